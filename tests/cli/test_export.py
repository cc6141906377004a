"""``python -m fcnn_opt export``: a trained network in NumPy's, PyTorch's (``torch.export`` and
TorchScript), Keras's, ONNX's and scikit-learn's own formats, each read back by that library
alone and predicting what fcnn_opt's network predicts; bad requests are one line, exit 2,
nothing written."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
from conftest import cli_env, run_cli

import fcnn_opt


def _grid() -> np.ndarray:
    return np.stack(np.meshgrid(np.linspace(-3, 3, 101), np.linspace(-3, 3, 101)), axis=-1).reshape(-1, 2)


def _torchscript_load(path):
    """``torch.jit.load``, without torch 2.13's DeprecationWarning for it (TorchScript is asked for)."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)
        return torch.jit.load(str(path))


@pytest.mark.parametrize("fmt", ["npz", "torch", "torchscript"])
def test_export_round_trips_on_the_grid(small_study, tmp_path, fmt):
    url, study = small_study
    out = tmp_path / f"best.{SUFFIX[fmt]}"
    done = run_cli("export", "--study-name", "small", "--storage", url, "--format", fmt, "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"exported  trial {study.best_trial.number}" in done.stdout
    model = fcnn_opt.load_model(url, "small")
    expected = model.predict_proba(_grid().astype(np.float32))
    if fmt == "npz":
        from fcnn_opt.search.export import load_npz

        got = load_npz(out).predict_proba(_grid())
    else:
        import torch

        from fcnn_opt.search.export import _module_class

        X = torch.from_numpy(_grid().astype(np.float32))
        with torch.no_grad():
            net = torch.export.load(str(out)).module() if fmt == "torch" else _torchscript_load(out)
            got = net(X).double().numpy()
            sizes = [2] + [W.shape[1] for W, _ in model.weights]
            plain = _module_class()(sizes, model.activation, model.task)
            plain.load_state_dict(torch.load(tmp_path / "best.state_dict.pt"))
            again = plain(X).double().numpy()
        assert np.allclose(again, expected, atol=1e-5)
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("fmt", ["torch", "torchscript"])
def test_the_pytorch_exports_warn_of_no_deprecation(small_study, tmp_path, fmt):
    """torch 2.13 deprecates TorchScript: ``--format torch`` does not use it, and
    ``--format torchscript``, which asks for it by name, is not warned about it."""
    import subprocess

    url, _ = small_study
    out = tmp_path / f"best.{SUFFIX[fmt]}"
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-m", "fcnn_opt", "export",
                           "--study-name", "small", "--storage", url, "--format", fmt, "--out", str(out)],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "DeprecationWarning" not in done.stderr and "torch.jit" not in done.stderr
    assert out.exists() and (tmp_path / "best.state_dict.pt").exists()


@pytest.mark.parametrize("args,message", [
    (["--trial", "999", "--format", "npz"], "has no trial 999"),
    (["--format", "tflite"], "invalid choice: 'tflite'"),
    (["--format", "npz", "--trial", "PRUNED"], "not complete; pass allow_partial=True"),
])
def test_bad_requests_write_nothing(small_study, tmp_path, args, message):
    url, study = small_study
    args = [str(next(t.number for t in study.trials if t.state.name == "PRUNED")) if a == "PRUNED" else a
            for a in args]
    done = run_cli("export", "--study-name", "small", "--storage", url, *args, "--out", tmp_path / "m.npz",
                   cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_path_is_refused(small_study, tmp_path):
    url, _ = small_study
    done = run_cli("export", "--study-name", "small", "--storage", url, "--format", "npz",
                   "--out", tmp_path / "no" / "such" / "m.npz", cwd=tmp_path)
    assert done.returncode == 2 and "does not exist or is not writable" in done.stderr


# --- every format, for a binary, a multiclass and a regression network ------------------------
# The exports run through the command line's main() in this process, so TensorFlow is imported
# once for all the Keras cases; each file is then read back by its own library, not fcnn_opt.

FORMATS = ("npz", "torch", "torchscript", "keras", "onnx", "sklearn")
SUFFIX = {"npz": "npz", "torch": "pt2", "torchscript": "pt", "keras": "keras", "onnx": "onnx", "sklearn": "pkl"}

# Two short studies beside the shared multiclass one (``small_study``: 4-class circles).
TASK_STUDIES = {
    "binary": {
        "study": {"name": "xor", "sampler": "random", "pruner": "none", "n_trials": 2, "seed": 3},
        "dataset": {"name": "xor", "n_points": 200},
        "params": {"epochs": 5, "n_layers": 2, "units": [4, 6], "activation": "tanh"},
    },
    "regression": {
        "study": {"name": "prod", "sampler": "random", "pruner": "none", "n_trials": 2, "seed": 4},
        "dataset": {"name": "prod", "n_points": 200},
        "params": {"epochs": 5, "n_layers": 2, "units": [3, 5], "activation": "sigmoid"},
    },
}


@pytest.fixture(scope="module")
def studies(small_study, tmp_path_factory) -> dict:
    """``{task: (storage URL, study name)}``: a stored study per task, each with its weights."""
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    found = {"multiclass": (small_study[0], "small")}
    for task, spec in TASK_STUDIES.items():
        url = f"sqlite:///{tmp_path_factory.mktemp(task) / 'study.db'}"
        run_study(parse_spec(spec), storage=url, progress=False)
        found[task] = (url, spec["study"]["name"])
    return found


def _dataset_grid(url: str, name: str) -> np.ndarray:
    """The picture grid (float32 points) of the dataset the study trained on."""
    import optuna

    from fcnn_opt.training.datasets import make_dataset

    study = optuna.load_study(study_name=name, storage=url)
    return make_dataset(**study.user_attrs["dataset"]).grid()[2]


def _export(url: str, name: str, fmt: str, out, capsys) -> tuple[int, str, str]:
    """``python -m fcnn_opt export`` of the study's best trial, in this process."""
    from fcnn_opt.cli.commands import main

    code = main(["export", "--study-name", name, "--storage", url, "--format", fmt, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _read_back(fmt: str, path, X: np.ndarray, task: str) -> np.ndarray:
    """The exported network's output at ``X``, computed by the format's own library only."""
    if fmt == "npz":
        with np.load(path) as data:
            h = X.astype(np.float64)
            n = sum(key.startswith("W") for key in data.files)
            act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh,
                   "sigmoid": lambda z: 1 / (1 + np.exp(-z))}[str(data["activation"])]
            for i in range(n):
                h = h @ data[f"W{i}"] + data[f"b{i}"]
                h = act(h) if i < n - 1 else h
        if task == "multiclass":
            e = np.exp(h - h.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        return 1 / (1 + np.exp(-h[:, 0])) if task == "binary" else h[:, 0]
    if fmt in ("torch", "torchscript"):
        import torch

        with torch.no_grad():
            net = torch.export.load(str(path)).module() if fmt == "torch" else _torchscript_load(path)
            return net(torch.from_numpy(X)).double().numpy()
    if fmt == "keras":
        import keras

        out = keras.saving.load_model(str(path)).predict(X, verbose=0)
        return out if task == "multiclass" else out[:, 0]
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["X"]
        return session.run(["output"], {"X": X})[0]
    import pickle

    with open(path, "rb") as fh:
        estimator = pickle.load(fh)
    if task == "regression":
        return estimator.predict(X)
    proba = estimator.predict_proba(X)
    return proba[:, 1] if task == "binary" else proba


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_format_round_trips_in_its_own_library(studies, tmp_path, capsys, task):
    url, name = studies[task]
    model = fcnn_opt.load_model(url, name)
    assert model.task == task
    X = _dataset_grid(url, name)
    expected = model.output(X)
    for fmt in FORMATS:
        out = tmp_path / f"best.{SUFFIX[fmt]}"
        code, stdout, stderr = _export(url, name, fmt, out, capsys)
        assert code == 0, stderr
        assert f"exported  trial {model.trial_number} of {name!r} ({fmt})" in stdout
        got = np.asarray(_read_back(fmt, out, X, task), dtype=np.float64)
        assert got.shape == expected.shape, fmt
        assert np.allclose(got, expected, atol=1e-5, rtol=0), (fmt, np.abs(got - expected).max())


def _clear_labels(model, X: np.ndarray) -> np.ndarray:
    """Points whose class is not within 1e-6 of a tie (float32 and float64 may split those)."""
    proba = model.predict_proba(X)
    top = np.sort(proba, axis=1)
    return top[:, -1] - top[:, -2] > 1e-6


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_the_sklearn_classifier_predicts_fcnn_opt_classes(studies, tmp_path, capsys, task):
    import pickle

    url, name = studies[task]
    code, _, stderr = _export(url, name, "sklearn", tmp_path / "clf.pkl", capsys)
    assert code == 0, stderr
    with open(tmp_path / "clf.pkl", "rb") as fh:
        estimator = pickle.load(fh)
    model = fcnn_opt.load_model(url, name)
    X = _dataset_grid(url, name)
    clear = _clear_labels(model, X)
    assert clear.mean() > 0.99
    assert list(estimator.classes_) == list(range(2 if task == "binary" else 4))
    assert np.array_equal(estimator.predict(X)[clear], model.predict(X)[clear])


@pytest.mark.parametrize("fmt, file_name, expected", [
    ("keras", "model.h5", "--format keras writes a .keras file; give --out NAME.keras"),
    ("torch", "best.pt", "--format torch writes a .pt2 file; give --out NAME.pt2 (not best.pt). For a TorchScript"),
])
def test_an_export_needs_its_format_s_file_name(studies, tmp_path, capsys, fmt, file_name, expected):
    url, name = studies["binary"]
    folder = tmp_path / "out"
    folder.mkdir()
    code, stdout, stderr = _export(url, name, fmt, folder / file_name, capsys)
    assert code == 2 and stdout == ""
    assert expected in stderr
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_torch_export_predicts_any_number_of_rows(studies, tmp_path, capsys, task):
    """The ``.pt2`` file is a ``torch.export`` ExportedProgram with a dynamic batch dimension."""
    import torch

    url, name = studies[task]
    code, _, stderr = _export(url, name, "torch", tmp_path / "best.pt2", capsys)
    assert code == 0, stderr
    program = torch.export.load(str(tmp_path / "best.pt2"))
    assert isinstance(program, torch.export.ExportedProgram)
    model = fcnn_opt.load_model(url, name)
    X = _dataset_grid(url, name)
    net = program.module()
    for rows in (1, 2, 7, len(X)):
        with torch.no_grad():
            got = net(torch.from_numpy(X[:rows])).double().numpy()
        expected = model.output(X[:rows])
        assert got.shape == expected.shape, rows
        assert np.allclose(got, expected, atol=1e-5, rtol=0), (rows, np.abs(got - expected).max())


@pytest.mark.parametrize("task,outputs", [("binary", 1), ("multiclass", 3), ("regression", 1)])
def test_a_network_without_hidden_layers_exports_to_every_format(tmp_path, task, outputs):
    """Depth 0 (one linear layer) is a valid network; every library represents it."""
    from fcnn_opt.search.export import export_model
    from fcnn_opt.search.models import TrainedModel

    rng = np.random.default_rng(7)
    weights = [(rng.normal(size=(2, outputs)).astype(np.float32), rng.normal(size=outputs).astype(np.float32))]
    model = TrainedModel(weights, "relu", task, study_name="", trial_number=0, value=None)
    X = _grid().astype(np.float32)
    for fmt in FORMATS:
        written = export_model(model, fmt, tmp_path / f"linear.{SUFFIX[fmt]}")
        got = np.asarray(_read_back(fmt, written[0], X, task), dtype=np.float64)
        assert np.allclose(got, model.output(X), atol=1e-5, rtol=0), fmt


def test_a_two_unit_multiclass_output_does_not_fit_an_mlp_classifier(tmp_path):
    """scikit-learn gives two classes one logistic unit, so a 2-unit softmax has no MLPClassifier."""
    from fcnn_opt.search.export import export_model
    from fcnn_opt.search.models import ModelError, TrainedModel

    rng = np.random.default_rng(8)
    weights = [(rng.normal(size=(2, 3)).astype(np.float32), np.zeros(3, np.float32)),
               (rng.normal(size=(3, 2)).astype(np.float32), np.zeros(2, np.float32))]
    model = TrainedModel(weights, "tanh", "multiclass", study_name="", trial_number=0, value=None)
    with pytest.raises(ModelError, match="does not fit scikit-learn's MLPClassifier"):
        export_model(model, "sklearn", tmp_path / "m.pkl")
    assert list(tmp_path.iterdir()) == []


def test_export_help_lists_every_format(capsys):
    from fcnn_opt.cli.commands import main

    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for fmt in FORMATS:
        assert fmt in text
