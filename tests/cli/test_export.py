"""``python -m fcnn_opt export``: a trained network in NumPy's and PyTorch's own formats, each
predicting what fcnn_opt's network predicts; bad requests are one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli

import fcnn_opt


def _grid() -> np.ndarray:
    return np.stack(np.meshgrid(np.linspace(-3, 3, 101), np.linspace(-3, 3, 101)), axis=-1).reshape(-1, 2)


@pytest.mark.parametrize("fmt", ["npz", "torch"])
def test_export_round_trips_on_the_grid(small_study, tmp_path, fmt):
    url, study = small_study
    out = tmp_path / f"best.{'npz' if fmt == 'npz' else 'pt'}"
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

        with torch.no_grad():
            got = torch.jit.load(str(out))(torch.from_numpy(_grid().astype(np.float32))).double().numpy()
            sizes = [2] + [W.shape[1] for W, _ in model.weights]
            plain = _module_class()(sizes, model.activation, model.task)
            plain.load_state_dict(torch.load(tmp_path / "best.state_dict.pt"))
            again = plain(torch.from_numpy(_grid().astype(np.float32))).double().numpy()
        assert np.allclose(again, expected, atol=1e-5)
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("args,message", [
    (["--trial", "999", "--format", "npz"], "has no trial 999"),
    (["--format", "onnx"], "invalid choice: 'onnx'"),
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
