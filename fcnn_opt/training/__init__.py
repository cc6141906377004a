"""What one trial trains: datasets (:mod:`~fcnn_opt.training.datasets`), the validated
hyperparameters (:mod:`~fcnn_opt.training.config`), the training loop
(:mod:`~fcnn_opt.training.loop`), the libraries behind one contract
(:mod:`~fcnn_opt.training.backends`) and the population engine that trains many networks at
once (:mod:`~fcnn_opt.training.population`).

This layer knows nothing of Optuna, studies or storages: it imports only NumPy and, when a
backend is used, that backend's library.
"""
