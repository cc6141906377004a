"""A trained network in another library's own format: ``python -m fcnn_opt export``.

    python -m fcnn_opt export --study-name tpe --best --format torch --out best.pt2

Formats, and how each loads back with no fcnn_opt:

- ``npz``: the weights (``W0, b0, W1, b1, ...``, float32) with ``activation`` and ``task``
  as strings; NumPy reads it back (``fcnn_opt.search.models.TrainedModel`` rebuilds it).
- ``torch``: a ``torch.export`` ExportedProgram in a ``.pt2`` file
  (``torch.export.load(PATH).module()(X)``, no fcnn_opt needed, any number of rows) whose
  output is what fcnn_opt's ``predict`` gives (probabilities, or values), and its
  ``state_dict`` beside it (``PATH`` with ``.state_dict.pt``) for ``FCNN(sizes, activation,
  task)``. The file name must end with ``.pt2``.
- ``torchscript``: the same module as TorchScript (``torch.jit.load(PATH)``), with the same
  ``state_dict`` beside it. torch 2.13 deprecates TorchScript; it is written only when asked
  for by this name.
- ``keras``: a Keras 3 ``Sequential`` (``Input``, then one ``Dense`` per layer with the
  activation, the last one sigmoid, softmax or linear) in a ``.keras`` file:
  ``keras.saving.load_model(PATH).predict(X)``; binary networks give ``(n, 1)``, P(class 1).
  Needs TensorFlow (``fcnn_opt[tf]``); the file name must end with ``.keras``.
- ``onnx``: an ONNX graph (opset 17; MatMul and Add per layer) with input ``"X"`` (float32,
  ``[N, n_inputs]``, any N) and output ``"output"``: P(class 1) ``(N,)``, class probabilities
  ``(N, k)`` or values ``(N,)``: ``onnxruntime.InferenceSession(PATH, providers=
  ["CPUExecutionProvider"]).run(None, {"X": X})[0]``. Needs ``fcnn_opt[onnx]``.
- ``sklearn``: a pickled, fitted scikit-learn ``MLPClassifier`` (binary, multiclass) or
  ``MLPRegressor`` (regression) whose ``coefs_`` and ``intercepts_`` are the weights:
  ``pickle.load(open(PATH, "rb")).predict_proba(X)`` (or ``.predict(X)``); classes are
  ``0..k-1``. Needs scikit-learn; load it with the scikit-learn version that wrote it.

Each export is checked before it is kept: the written file is read back and its predictions
on a 41 x 41 grid over [-4, 4]^2 (wider than every built-in dataset's picture; for other input
widths, as many seeded random points in [-4, 4]^d; on your own data, in standard deviations
around each input's training mean) must equal
fcnn_opt's to 1e-5, or nothing is written.

The formats are the entries of :data:`FORMATS`; :func:`register_format` adds one (a writer
and the reader that checks it), from your own code or a plugin module
(:mod:`fcnn_opt.search.registry` says how the command line finds it).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fcnn_opt.search.models import PROB_EPS, EnsembleModel, ModelError, TrainedModel
from fcnn_opt.search.registry import Registry
from fcnn_opt.store.artifact_files import weight_arrays, weights_from_arrays

TOLERANCE = 1e-5
ONNX_OPSET = 17  # supported by every onnxruntime from 1.18 on
ONNX_IR_VERSION = 8  # the IR version that goes with opset 17

# writer(model, path) -> the files written, the one the reader reads back first;
# reader(path, X, task) -> the file's predictions on X, as the model's ``output`` gives them.
Writer = Callable[[Any, Path], list[Path]]
Reader = Callable[[Path, np.ndarray, str], np.ndarray]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, how it is written (``writer``) and read back for the
    check (``reader``), the pip extra it needs, and what it can do.

    ``modules``: what the writer and reader import, checked before writing; ``needs`` says
    what is missing in words ("PyTorch"), with ``extra`` (or ``install``, the whole
    ``pip install`` argument) saying what to install. ``ensemble``: it holds a refit
    ensemble as one model. ``suffix``: the file name must end so (``suffix_hint``: what to
    say when it does not). ``environment``: variables set (unless set already) before use.
    """

    name: str
    writer: Writer
    reader: Reader
    description: str = ""
    extra: str | None = None
    modules: tuple[str, ...] = ()
    needs: str = ""
    install: str | None = None
    ensemble: bool = False
    suffix: str | None = None
    suffix_hint: str = ""
    environment: tuple[tuple[str, str], ...] = ()


FORMATS: Registry[ExportFormat] = Registry("format")


def register_format(name: str, writer: Writer, reader: Reader, *, description: str = "",
                    extra: str | None = None, modules: tuple[str, ...] = (), needs: str = "",
                    install: str | None = None, ensemble: bool = False, suffix: str | None = None,
                    suffix_hint: str = "", environment: tuple[tuple[str, str], ...] = (),
                    replace: bool = False) -> ExportFormat:
    """Register an export format under ``name`` and return its entry (the fields are
    :class:`ExportFormat`'s). ``writer(model, path)`` writes ``model`` (a
    :class:`~fcnn_opt.search.models.TrainedModel`, or an ``EnsembleModel`` where ``ensemble``)
    to ``path`` and returns the files written; ``reader(path, X, task)`` reads the first one
    back and returns its predictions on ``X``, which must equal ``model.output(X)``."""
    return FORMATS.register(ExportFormat(name, writer, reader, description, extra, tuple(modules), needs,
                                         install, ensemble, suffix, suffix_hint, tuple(environment)),
                            replace=replace)


def export_model(model: TrainedModel, fmt: str, out: str | Path) -> list[Path]:
    """Write ``model`` to ``out`` in format ``fmt``; returns the files written.

    Raises:
        ModelError: an unknown format, a missing library (naming the extra), a folder that
            cannot be written, or an export whose predictions differ from the model's.
    """
    if fmt not in FORMATS:
        raise ModelError(f"Unknown format {fmt!r}. Expected one of {', '.join(FORMATS.names())}.")
    entry = FORMATS.get(fmt)
    if isinstance(model, EnsembleModel) and len(model.members) == 1 and model.temperature == 1.0:
        model = model.members[0]  # one network, as it is: every format holds it
    if isinstance(model, EnsembleModel) and not entry.ensemble:
        raise ModelError(f"--format {fmt} holds one network, and this model is {model.description} "
                         f"({len(model.members)} network(s), temperature {model.temperature:.3g}); use "
                         f"{', '.join(FORMATS.names(ensemble=True))}, or --trial N for one trial's own network.")
    out = Path(out)
    if out.is_dir():
        raise ModelError(f"--out {out} is a folder; give a file name.")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise ModelError(f"Cannot write {out}: its folder {out.parent} does not exist or is not writable.")
    suffix = entry.suffix
    if suffix is not None and out.suffix != suffix:
        hint = f" {entry.suffix_hint}" if entry.suffix_hint else ""
        raise ModelError(f"--format {fmt} writes a {suffix} file; give --out NAME{suffix} (not {out.name}).{hint}")
    _require(entry)
    # Written beside the target under temporary names, checked, then moved into place.
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".fcnn_opt-export-") as tmp:
        staged = entry.writer(model, Path(tmp) / out.name)
        _check(model, fmt, staged[0])
        final = []
        for path in staged:
            target = out.parent / path.name
            os.replace(path, target)
            final.append(target)
    return final


def _require(entry: ExportFormat) -> None:
    """Import the libraries format ``entry`` needs, or raise a one-line ModelError naming its
    extra. Its environment is set first (Keras is pointed at TensorFlow, ``KERAS_BACKEND``,
    unless the caller chose a backend)."""
    for key, value in entry.environment:
        os.environ.setdefault(key, value)
    install = entry.install or (f"'fcnn_opt[{entry.extra}]'" if entry.extra else None)
    for name in entry.modules:
        try:
            __import__(name)
        except ImportError:
            needs = entry.needs or " and ".join(entry.modules)
            where = f": pip install {install}" if install else ""
            raise ModelError(f"--format {entry.name} needs {needs}{where}.") from None


def _sizes(model: TrainedModel) -> list[int]:
    """Layer widths, input first: ``[n_inputs, hidden..., n_outputs]``."""
    return [model.weights[0][0].shape[0]] + [W.shape[1] for W, _ in model.weights]


def _npz(model, path: Path) -> list[Path]:
    with path.open("wb") as fh:
        if isinstance(model, EnsembleModel):  # member i's weights as m{i}_W0, m{i}_b0, ...
            arrays = {}
            for i, member in enumerate(model.members):
                arrays.update(weight_arrays(member.weights, prefix=f"m{i}_"))
            np.savez(fh, task=np.array(model.task), temperature=np.array(model.temperature),
                     activations=np.array([m.activation for m in model.members]), shares=model.shares, **arrays)
        else:
            np.savez(fh, activation=np.array(model.activation), task=np.array(model.task),
                     **weight_arrays(model.weights))
    return [path]


def load_npz(path: str | Path):
    """A model exported with ``--format npz``: a :class:`TrainedModel`, or for a refit ensemble
    an :class:`~fcnn_opt.search.refit.EnsembleModel` (``activations``, ``shares`` (each
    member's weight; equal in files written before ensemble selection) and ``temperature``
    beside each member's ``m{i}_W0, m{i}_b0, ...``)."""
    with np.load(path) as data:
        task = str(data["task"])
        if "activations" not in data:
            return TrainedModel(weights_from_arrays(data), str(data["activation"]), task,
                                study_name="", trial_number=-1, value=None)
        members = [TrainedModel(weights_from_arrays(data, f"m{i}_"), str(activation), task, study_name="",
                                trial_number=-1, value=None) for i, activation in enumerate(data["activations"])]
        shares = [float(w) for w in data["shares"]] if "shares" in data else None
        return EnsembleModel(members, float(data["temperature"]), study_name="", trials=[-1] * len(members),
                             weights=shares)


EXAMPLE_ROWS = 8  # the batch torch.export traces with; not 0 or 1, which it would fix as constants


def _torch(model, path: Path) -> list[Path]:
    import torch

    net = ensemble_module(model) if isinstance(model, EnsembleModel) else fcnn_module(model)
    example = torch.zeros(EXAMPLE_ROWS, _n_inputs(model))
    program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return [path, _state_dict(net, path)]


def _torchscript(model: TrainedModel, path: Path) -> list[Path]:
    net = fcnn_module(model)
    with _torchscript_asked_for() as torch:
        torch.jit.script(net).save(str(path))
    return [path, _state_dict(net, path)]


def _state_dict(net, path: Path) -> Path:
    import torch

    state = path.with_name(path.stem + ".state_dict.pt")
    torch.save(net.state_dict(), state)
    return state


@contextmanager
def _torchscript_asked_for():
    """torch, with torch 2.13's DeprecationWarnings for ``torch.jit.script`` and ``torch.jit.load``
    silenced: ``--format torchscript`` is TorchScript by the user's own choice (``--format torch``
    is the ``torch.export`` replacement), so the warning would only repeat what they chose."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated",
                                category=DeprecationWarning)
        yield torch


def _n_inputs(model) -> int:
    first = model.members[0] if isinstance(model, EnsembleModel) else model
    return first.weights[0][0].shape[0]


def ensemble_module(model: EnsembleModel):
    """A ``torch.nn.Module`` computing what ``model.output`` computes: the members' weighted
    mean output, its log-odds divided by the temperature (classification)."""
    import torch

    class Ensemble(torch.nn.Module):
        """The weighted mean of the members' outputs, calibrated by one temperature."""

        def __init__(self, members: list, shares, temperature: float, task: str):
            super().__init__()
            self.members = torch.nn.ModuleList(members)
            self.register_buffer("shares", torch.tensor(shares, dtype=torch.float32))
            self.register_buffer("temperature", torch.tensor(float(temperature)))
            self.calibrated = temperature != 1.0 and task != "regression"
            self.task = task

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = torch.tensordot(self.shares, torch.stack([member(x) for member in self.members]), dims=1)
            if not self.calibrated:
                return p
            p = p.clamp(PROB_EPS, 1 - PROB_EPS)
            if self.task == "binary":
                return torch.sigmoid((torch.log(p) - torch.log1p(-p)) / self.temperature)
            return torch.softmax(torch.log(p) / self.temperature, dim=1)

    return Ensemble([fcnn_module(m) for m in model.members], model.shares, model.temperature, model.task).eval()


def fcnn_module(model: TrainedModel):
    """A ``torch.nn.Module`` computing what ``model.output`` computes."""
    import torch

    net = _module_class()(_sizes(model), model.activation, model.task)
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


def _keras(model: TrainedModel, path: Path) -> list[Path]:
    keras_model(model).save(str(path))
    return [path]


KERAS_OUTPUT = {"binary": "sigmoid", "multiclass": "softmax", "regression": "linear"}


def keras_model(model: TrainedModel):
    """A Keras ``Sequential`` computing what ``model.output`` computes (binary: ``(n, 1)``)."""
    import keras

    sizes = _sizes(model)
    layers = [keras.Input(shape=(sizes[0],), name="X")]
    for i, width in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        layers.append(keras.layers.Dense(width, activation=KERAS_OUTPUT[model.task] if last else model.activation,
                                         name="output" if last else f"hidden_{i + 1}"))
    net = keras.Sequential(layers, name="fcnn")
    for layer, (W, b) in zip(net.layers, model.weights, strict=True):
        layer.set_weights([np.asarray(W, np.float32), np.asarray(b, np.float32)])
    return net


def _onnx(model: TrainedModel, path: Path) -> list[Path]:
    import onnx

    graph = onnx_model(model)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return [path]


ONNX_ACTIVATION = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _onnx_network(model: TrainedModel, nodes: list, weights: list, prefix: str = "") -> str:
    """Append one network's nodes (names prefixed) reading ``"X"``; returns the name of its
    output: probabilities ``(N, 1)`` (binary) or ``(N, k)``, or values ``(N, 1)``."""
    from onnx import helper, numpy_helper

    h = "X"
    for i, (W, b) in enumerate(model.weights):
        weights += [numpy_helper.from_array(np.asarray(W, np.float32), f"{prefix}W{i}"),
                    numpy_helper.from_array(np.asarray(b, np.float32), f"{prefix}b{i}")]
        nodes += [helper.make_node("MatMul", [h, f"{prefix}W{i}"], [f"{prefix}matmul{i}"]),
                  helper.make_node("Add", [f"{prefix}matmul{i}", f"{prefix}b{i}"], [f"{prefix}z{i}"])]
        h = f"{prefix}z{i}"
        if i < len(model.weights) - 1:
            nodes.append(helper.make_node(ONNX_ACTIVATION[model.activation], [h], [f"{prefix}a{i}"]))
            h = f"{prefix}a{i}"
    if model.task == "multiclass":
        nodes.append(helper.make_node("Softmax", [h], [f"{prefix}p"], axis=1))
        return f"{prefix}p"
    if model.task == "binary":
        nodes.append(helper.make_node("Sigmoid", [h], [f"{prefix}p"]))
        return f"{prefix}p"
    return h


def _onnx_temperature(task: str, temperature: float, p: str, nodes: list, weights: list) -> str:
    """Nodes dividing the log-odds of probabilities ``p`` by ``temperature``; the new name."""
    from onnx import helper, numpy_helper

    weights += [numpy_helper.from_array(np.array(PROB_EPS, np.float32), "eps"),
                numpy_helper.from_array(np.array(1 - PROB_EPS, np.float32), "one_minus_eps"),
                numpy_helper.from_array(np.array(temperature, np.float32), "temperature")]
    nodes += [helper.make_node("Clip", [p, "eps", "one_minus_eps"], ["clipped"]),
              helper.make_node("Log", ["clipped"], ["log_p"])]
    if task == "binary":
        weights.append(numpy_helper.from_array(np.array(1.0, np.float32), "one"))
        nodes += [helper.make_node("Sub", ["one", "clipped"], ["q"]),
                  helper.make_node("Log", ["q"], ["log_q"]),
                  helper.make_node("Sub", ["log_p", "log_q"], ["logit"]),
                  helper.make_node("Div", ["logit", "temperature"], ["scaled"]),
                  helper.make_node("Sigmoid", ["scaled"], ["calibrated"])]
    else:
        nodes += [helper.make_node("Div", ["log_p", "temperature"], ["scaled"]),
                  helper.make_node("Softmax", ["scaled"], ["calibrated"], axis=1)]
    return "calibrated"


def onnx_model(model):
    """An ONNX ``ModelProto``: input ``"X"`` float32 ``[N, n_inputs]``, output ``"output"`` as
    ``model.output`` gives it (``(N,)`` for binary and regression, ``(N, k)`` for multiclass);
    a refit ensemble is one graph: each member, their ``Mean`` (each scaled by its weight
    and their ``Sum``, when the weights differ), the temperature."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, weights = [], []
    if isinstance(model, EnsembleModel):
        outputs = [_onnx_network(m, nodes, weights, prefix=f"m{i}_") for i, m in enumerate(model.members)]
        if len(set(model.shares.tolist())) == 1:
            nodes.append(helper.make_node("Mean", outputs, ["mean"]))
        else:
            for i, (out, share) in enumerate(zip(outputs, model.shares, strict=True)):
                weights.append(numpy_helper.from_array(np.array(share, np.float32), f"m{i}_share"))
                nodes.append(helper.make_node("Mul", [out, f"m{i}_share"], [f"m{i}_weighted"]))
            nodes.append(helper.make_node("Sum", [f"m{i}_weighted" for i in range(len(outputs))], ["mean"]))
        h = "mean"
        if model.temperature != 1.0 and model.task != "regression":
            h = _onnx_temperature(model.task, model.temperature, h, nodes, weights)
        width = _sizes(model.members[0])[-1]
    else:
        h = _onnx_network(model, nodes, weights)
        width = _sizes(model)[-1]
    if model.task == "multiclass":
        nodes.append(helper.make_node("Identity", [h], ["output"]))
        shape = ["N", width]
    else:
        weights.append(numpy_helper.from_array(np.array([-1], np.int64), "flat"))
        nodes.append(helper.make_node("Reshape", [h, "flat"], ["output"]))  # (N, 1) -> (N,)
        shape = ["N"]
    graph = helper.make_graph(
        nodes, "fcnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", _n_inputs(model)])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)], initializer=weights)
    proto = helper.make_model(graph, producer_name="fcnn_opt",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    proto.ir_version = ONNX_IR_VERSION
    return proto


def _sklearn(model: TrainedModel, path: Path) -> list[Path]:
    with path.open("wb") as fh:
        pickle.dump(sklearn_estimator(model), fh)
    return [path]


SKLEARN_ACTIVATION = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}


def sklearn_estimator(model: TrainedModel):
    """A fitted ``MLPClassifier`` (classes ``0..k-1``) or ``MLPRegressor`` with ``model``'s weights.

    scikit-learn sets up a fitted estimator's attributes (``classes_``, ``out_activation_``,
    ``n_layers_``, ...) only in ``fit``: one iteration on a few points, one per class, does
    that, then the weights are replaced by the model's.

    Raises:
        ModelError: the network does not fit the estimator (its output layer is not the
            width scikit-learn gives that task, e.g. a two-unit multiclass output).
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    sizes = _sizes(model)
    settings = {"hidden_layer_sizes": tuple(sizes[1:-1]), "activation": SKLEARN_ACTIVATION[model.activation],
                "max_iter": 1}  # keywords only: MLPRegressor's first positional parameter is its loss
    if model.task == "regression":
        estimator, y, name = MLPRegressor(**settings), np.array([0.0, 1.0]), "MLPRegressor"
    else:
        k = 2 if model.task == "binary" else sizes[-1]
        estimator, y, name = MLPClassifier(**settings), np.arange(k), "MLPClassifier"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one iteration does not converge, as intended
            estimator.fit(np.zeros((len(y), sizes[0])), y)
    except ValueError as exc:
        raise ModelError(f"This {model.task} network ({'-'.join(map(str, sizes))}) does not fit "
                         f"scikit-learn's {name}: {str(exc).splitlines()[0]}") from None
    shapes = [W.shape for W in estimator.coefs_]
    if shapes != [np.shape(W) for W, _ in model.weights]:
        raise ModelError(f"This {model.task} network ({'-'.join(map(str, sizes))}) does not fit "
                         f"scikit-learn's {name}, whose layers would be {shapes}.")
    estimator.coefs_ = [np.array(W, dtype=np.float64) for W, _ in model.weights]
    estimator.intercepts_ = [np.array(b, dtype=np.float64) for _, b in model.weights]
    return estimator


def _check(model: TrainedModel, fmt: str, path: Path) -> None:
    """Read the export back and compare its predictions with the model's on a grid (for a
    network of other than two inputs, as many seeded random points in [-4, 4]^d)."""
    n_inputs = _n_inputs(model)
    if n_inputs == 2:
        grid = np.stack(np.meshgrid(np.linspace(-4, 4, 41), np.linspace(-4, 4, 41)), axis=-1).reshape(-1, 2)
    else:
        grid = np.random.default_rng(0).uniform(-4, 4, size=(41 * 41, n_inputs))
    if model.input_scaling is not None:  # own data: 4 standard deviations around each input's mean
        mean, std = model.input_scaling
        grid = np.asarray(mean) + np.asarray(std) * grid
    grid = grid.astype(np.float32)
    expected = model.output(grid)
    got = np.asarray(FORMATS.get(fmt).reader(path, grid, model.task), dtype=np.float64)
    if got.shape != expected.shape or not np.allclose(got, expected, atol=TOLERANCE, rtol=0):
        difference = f"{float(np.max(np.abs(got - expected))):.3g}" if got.shape == expected.shape \
            else f"shape {got.shape}, not {expected.shape}"
        raise ModelError(f"The {fmt} export does not reproduce the model (largest difference "
                         f"{difference}); nothing was written.")


def _read_npz(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    return load_npz(path).output(X)


def _read_torch(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.export.load(str(path)).module()(torch.from_numpy(X)).double().numpy()


def _read_torchscript(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    with _torchscript_asked_for() as torch, torch.no_grad():
        return torch.jit.load(str(path))(torch.from_numpy(X)).double().numpy()


def _read_keras(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    import keras

    out = keras.saving.load_model(str(path)).predict(X, batch_size=len(X), verbose=0)
    return out[:, 0] if task != "multiclass" else out


def _read_onnx(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"X": X})[0]


def _read_sklearn(path: Path, X: np.ndarray, task: str) -> np.ndarray:
    with path.open("rb") as fh:
        estimator = pickle.load(fh)
    if task == "regression":
        return estimator.predict(X)
    proba = estimator.predict_proba(X)
    return proba[:, 1] if task == "binary" else proba


# The built-in formats, in the order the command line lists them.
register_format("npz", _npz, _read_npz, description="npz (NumPy arrays)", ensemble=True)
register_format("torch", _torch, _read_torch,
                description="torch (a torch.export .pt2 file, and its state_dict beside it)",
                extra="torch", modules=("torch",), needs="PyTorch", ensemble=True, suffix=".pt2",
                suffix_hint="For a TorchScript .pt file, use --format torchscript.")
register_format("torchscript", _torchscript, _read_torchscript,
                description="torchscript (TorchScript, which torch 2.13 deprecates, and its state_dict)",
                extra="torch", modules=("torch",), needs="PyTorch")
register_format("keras", _keras, _read_keras, description="keras (a .keras file)", extra="tf",
                modules=("keras",), needs="TensorFlow and Keras", suffix=".keras",
                environment=(("KERAS_BACKEND", "tensorflow"),))
register_format("onnx", _onnx, _read_onnx, description="onnx (an ONNX graph)", extra="onnx",
                modules=("onnx", "onnxruntime"), needs="onnx and onnxruntime", ensemble=True)
register_format("sklearn", _sklearn, _read_sklearn,
                description="sklearn (a pickled MLPClassifier or MLPRegressor)",
                modules=("sklearn",), needs="scikit-learn", install="scikit-learn")
