"""Where studies live: Optuna storages opened by URL (:mod:`~fcnn_opt.store.storages`), the
one module that relies on Optuna's private names (:mod:`~fcnn_opt.store.optuna_internals`),
and the in-memory pruning mirror (:mod:`~fcnn_opt.store.mirror`).

Imports Optuna (and SQLAlchemy), never :mod:`fcnn_opt.training` or anything above.
"""
