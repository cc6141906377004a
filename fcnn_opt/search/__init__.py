"""How a study runs: study files and the search space (:mod:`~fcnn_opt.search.space`), the
Optuna objective (:mod:`~fcnn_opt.search.objective`), the worker loop
(:mod:`~fcnn_opt.search.runner`, with its plan :mod:`~fcnn_opt.search.plan`, its trials'
source :mod:`~fcnn_opt.search.trial_source` and its reports :mod:`~fcnn_opt.search.summary`,
:mod:`~fcnn_opt.search.progress`), the pruning mirror (:mod:`~fcnn_opt.search.mirror`,
:mod:`~fcnn_opt.search.mirror_rules`), population batches (:mod:`~fcnn_opt.search.batches`),
worker processes (:mod:`~fcnn_opt.search.workers`) and the ledger that keeps the budget exact
(:mod:`~fcnn_opt.search.ledger`). What a study may name is registered in
:mod:`~fcnn_opt.search.samplers`, :mod:`~fcnn_opt.search.pruners`,
:mod:`~fcnn_opt.search.metrics` and :mod:`~fcnn_opt.search.export` (plugins:
:mod:`~fcnn_opt.search.registry`).

Uses :mod:`fcnn_opt.training` to train and :mod:`fcnn_opt.store` to read and write trials.
"""
