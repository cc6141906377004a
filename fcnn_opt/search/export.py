"""A trained network in another library's own format: ``python -m fcnn_opt export``.

    python -m fcnn_opt export --study-name tpe --best --format torch --out best.pt

Formats:

- ``npz``: the weights (``W0, b0, W1, b1, ...``, float32) with ``activation`` and ``task``
  as strings; NumPy reads it back (``fcnn_opt.search.models.TrainedModel`` rebuilds it).
- ``torch``: a TorchScript module (``torch.jit.load(PATH)``, no fcnn_opt needed) whose output
  is what fcnn_opt's ``predict`` gives (probabilities, or values), and its ``state_dict``
  beside it (``PATH`` with ``.state_dict.pt``) for ``FCNN(sizes, activation, task)``.

Each export is checked before it is kept: the written file is read back and its predictions
on a 41 x 41 grid over [-4, 4]^2 (wider than every built-in dataset's picture) must equal
fcnn_opt's to 1e-5, or nothing is written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from fcnn_opt.search.models import ModelError, TrainedModel
from fcnn_opt.store.artifact_files import weight_arrays, weights_from_arrays

FORMATS = ("npz", "torch")
TOLERANCE = 1e-5


def export_model(model: TrainedModel, fmt: str, out: str | Path) -> list[Path]:
    """Write ``model`` to ``out`` in format ``fmt``; returns the files written.

    Raises:
        ModelError: an unknown format, a missing library (naming the extra), a folder that
            cannot be written, or an export whose predictions differ from the model's.
    """
    if fmt not in FORMATS:
        raise ModelError(f"Unknown format {fmt!r}. Expected one of {', '.join(FORMATS)}.")
    out = Path(out)
    if out.is_dir():
        raise ModelError(f"--out {out} is a folder; give a file name.")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise ModelError(f"Cannot write {out}: its folder {out.parent} does not exist or is not writable.")
    if fmt == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ModelError("--format torch needs PyTorch: pip install 'fcnn_opt[torch]'.") from None
    # Written beside the target under temporary names, checked, then moved into place.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".fcnn_opt-export-") as tmp:
        staged = {"npz": _npz, "torch": _torch}[fmt](model, Path(tmp) / out.name)
        _check(model, fmt, staged[0])
        final = []
        for path in staged:
            target = out.parent / path.name
            os.replace(path, target)
            final.append(target)
    return final


def _npz(model: TrainedModel, path: Path) -> list[Path]:
    with path.open("wb") as fh:
        np.savez(fh, activation=np.array(model.activation), task=np.array(model.task),
                 **weight_arrays(model.weights))
    return [path]


def load_npz(path: str | Path) -> TrainedModel:
    """A model exported with ``--format npz``."""
    with np.load(path) as data:
        return TrainedModel(weights_from_arrays(data), str(data["activation"]), str(data["task"]),
                            study_name="", trial_number=-1, value=None)


def _torch(model: TrainedModel, path: Path) -> list[Path]:
    import torch

    net = fcnn_module(model)
    scripted = torch.jit.script(net)
    scripted.save(str(path))
    state = path.with_name(path.stem + ".state_dict.pt")
    torch.save(net.state_dict(), state)
    return [path, state]


def fcnn_module(model: TrainedModel):
    """A ``torch.nn.Module`` computing what ``model.output`` computes."""
    import torch

    sizes = [model.weights[0][0].shape[0]] + [W.shape[1] for W, _ in model.weights]
    net = _module_class()(sizes, model.activation, model.task)
    with torch.no_grad():
        for layer, (W, b) in zip(net.layers, model.weights, strict=True):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.asarray(W, np.float32).T)))
            layer.bias.copy_(torch.from_numpy(np.asarray(b, np.float32)))
    return net.eval()


def _module_class():
    import torch

    class FCNN(torch.nn.Module):
        """Linear layers with ``activation`` between them; the output as fcnn_opt gives it:
        P(class 1) for binary, class probabilities for multiclass, values for regression."""

        def __init__(self, sizes: list[int], activation: str, task: str):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
            self.activation = activation
            self.task = task

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = len(self.layers)
            for i, layer in enumerate(self.layers):
                x = layer(x)
                if i < n - 1:
                    if self.activation == "relu":
                        x = torch.relu(x)
                    elif self.activation == "tanh":
                        x = torch.tanh(x)
                    else:
                        x = torch.sigmoid(x)
            if self.task == "binary":
                return torch.sigmoid(x[:, 0])
            if self.task == "multiclass":
                return torch.softmax(x, dim=1)
            return x[:, 0]

    return FCNN


def _check(model: TrainedModel, fmt: str, path: Path) -> None:
    """Read the export back and compare its predictions with the model's on a grid."""
    grid = np.stack(np.meshgrid(np.linspace(-4, 4, 41), np.linspace(-4, 4, 41)), axis=-1).reshape(-1, 2)
    grid = grid.astype(np.float32)[:, : model.weights[0][0].shape[0]]
    expected = model.output(grid)
    if fmt == "npz":
        got = load_npz(path).output(grid)
    else:
        import torch

        with torch.no_grad():
            got = torch.jit.load(str(path))(torch.from_numpy(grid)).double().numpy()
    if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE, rtol=0):
        raise ModelError(f"The {fmt} export does not reproduce the model (largest difference "
                         f"{float(np.max(np.abs(got - expected))):.3g}); nothing was written.")
