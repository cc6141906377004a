"""Training libraries behind one contract (:class:`Backend`), looked up by name.

Each backend lives in its own module and is imported only when asked for, so
``import fcnn_opt`` never pulls in PyTorch or TensorFlow.
"""

from __future__ import annotations

import importlib

from fcnn_opt.training.backends._base import Backend, Model, TrainState, Weights
from fcnn_opt.training.config import LIB_ALIASES, LIBS

__all__ = ["Backend", "Model", "TrainState", "Weights", "get_backend", "LIBS"]

# name -> (module, class, pip package that provides the library)
_REGISTRY = {
    "numpy": ("._numpy", "NumpyBackend", "numpy"),
    "torch": ("._torch", "TorchBackend", "torch"),
    "tf": ("._tf", "TFBackend", "tensorflow-cpu (or tensorflow)"),
    "keras": ("._keras", "KerasBackend", "keras and tensorflow-cpu"),
    "sklearn": ("._sklearn", "SklearnBackend", "scikit-learn"),
}
_EXTRAS = {"torch": "torch", "tf": "tf", "keras": "tf", "sklearn": "sklearn", "numpy": ""}
_cache: dict[str, Backend] = {}


def get_backend(name: str) -> Backend:
    """The backend called ``name``; a clear ImportError if its library is missing."""
    name = LIB_ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(f"Unknown backend {name!r}. Valid backends: {', '.join(LIBS)}")
    if name not in _cache:
        module_name, class_name, package = _REGISTRY[name]
        try:
            module = importlib.import_module(module_name, __name__)
        except ImportError as exc:
            extra = _EXTRAS[name]
            how = f"pip install 'fcnn_opt[{extra}]'" if extra else f"pip install {package}"
            raise ImportError(  # the extra pins versions (e.g. torch's CPU build), hence first
                f"lib={name!r} needs {package}, which could not be imported ({exc}). "
                f"Install it with `{how}` (the pinned versions), or `pip install {package.split()[0]}`."
            ) from exc
        _cache[name] = getattr(module, class_name)()
    return _cache[name]
