"""What a study shows: the figures (:mod:`~fcnn_opt.show.figures`, public as
:mod:`fcnn_opt.plots`), the offline HTML report (:mod:`~fcnn_opt.show.report`) and each
trial's picture for optuna-dashboard (:mod:`~fcnn_opt.show.artifacts`).

Reads trials through Optuna's public API; imports :mod:`fcnn_opt.training` to rebuild
datasets and networks, and :mod:`fcnn_opt.store` to find storages.
"""
