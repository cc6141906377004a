"""Where studies live: Optuna storages opened by URL (:mod:`~fcnn_opt.store.storages`), the
one module that relies on Optuna's private names (:mod:`~fcnn_opt.store.optuna_internals`),
the files beside a study (:mod:`~fcnn_opt.store.artifact_files`) and the pruning mirror's
storage side (:mod:`~fcnn_opt.store.mirror`; what the mirror decides is in
:mod:`fcnn_opt.search.mirror`).

Imports Optuna (and SQLAlchemy), never :mod:`fcnn_opt.training` or anything above.
"""
