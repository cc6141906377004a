"""How a study runs: study files and the search space (:mod:`~fcnn_opt.search.space`), the
Optuna objective (:mod:`~fcnn_opt.search.objective`), the worker loop
(:mod:`~fcnn_opt.search.runner`), population batches (:mod:`~fcnn_opt.search.batches`),
worker processes (:mod:`~fcnn_opt.search.workers`) and the ledger that keeps the budget exact
(:mod:`~fcnn_opt.search.ledger`).

Uses :mod:`fcnn_opt.training` to train and :mod:`fcnn_opt.store` to read and write trials.
"""
