"""The decision boundary as it learns: snapshots while training, stored, drawn and animated."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_toml
from PIL import Image

import fcnn_opt
from fcnn_opt.store.artifact_files import load_snapshots
from fcnn_opt.training.loop import snapshot_epochs


def test_snapshot_epochs_spread_over_the_run():
    assert snapshot_epochs(50, 1) == {50} and snapshot_epochs(50, 0) == set()
    assert snapshot_epochs(5, 10) == {1, 2, 3, 4, 5}
    chosen = sorted(snapshot_epochs(50, 6))
    assert chosen[0] == 1 and chosen[-1] == 50 and len(chosen) == 6


def test_training_keeps_the_weights_at_each_snapshot_epoch():
    from fcnn_opt.training.population import train_population

    data = fcnn_opt.make_dataset("circles", n_points=300)
    config = fcnn_opt.TrainConfig(dims=(8,), epochs=12)
    result = fcnn_opt.train(data, config, snapshots=4)
    assert sorted(result.snapshots) == sorted(snapshot_epochs(12, 4))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(result.snapshots[12], result.weights(), strict=True))
    assert not np.allclose(result.snapshots[1][0][0], result.snapshots[12][0][0])
    # The population engine keeps each member's own, at each member's own epochs.
    members = train_population(data, [config, config.replace(epochs=6, dims=(4,))], snapshots=3)
    assert [sorted(m.snapshots) for m in members] == [[1, 6, 12], [1, 4, 6]]
    assert members[1].snapshots[6][0][0].shape == (2, 4)
    assert np.allclose(members[0].snapshots[12][0][0], members[0].weights()[0][0])


def test_a_study_with_snapshots_stores_them_animates_them_and_reports_them(tmp_path):
    cfg = write_toml(tmp_path / "s.toml", '[study]\nname = "s"\nsampler = "random"\nn_trials = 3\n'
                                          '[dataset]\nn_points = 300\n[params]\nepochs = 8\nunits = [4, 8]\n')
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", "--snapshots", 4, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name="s", storage=url)
    best = study.best_trial
    snapshots = load_snapshots(best)
    assert sorted(snapshots) == sorted(snapshot_epochs(8, 4))
    # Two pictures per trial: the still one, and the animation with one frame per snapshot.
    from optuna.artifacts import get_all_artifact_meta

    metas = {m.filename: m for m in get_all_artifact_meta(best, storage=study._storage)}
    animation = next(name for name in metas if name.startswith("learning_"))
    assert any(name.startswith("response_") for name in metas)
    image = Image.open(io.BytesIO((tmp_path / "artifacts" / metas[animation].artifact_id).read_bytes()))
    assert image.format == "PNG" and image.n_frames == 4
    # The report's animation: one frame per snapshot, a slider, best and worst side by side.
    from fcnn_opt.plots import learning_data, plot_learning

    data = learning_data(study)
    assert [run.label for run in data.runs] == ["best", "worst"]
    assert data.runs[0].epochs == sorted(snapshots) and len(data.runs[0].frames) == 4
    fig = plot_learning(study)
    assert len(fig.frames) == 4 and fig.layout.sliders
    report = run_cli("report", "--study-name", "s", "--storage", url, "--out", tmp_path / "r", cwd=tmp_path)
    assert report.returncode == 0 and "decision boundary" not in report.stdout.split("skipped", 1)[-1]
    assert list((tmp_path / "r").glob("*_learning.png"))


def test_without_snapshots_the_report_has_no_animation_and_says_how(tmp_path, small_study):
    from fcnn_opt.plots import PlotError, learning_data

    url, study = small_study
    with pytest.raises(PlotError, match="--snapshots N"):
        learning_data(study)


@pytest.mark.parametrize("value", ["-1", "101"])
def test_bad_snapshot_counts_are_refused(tmp_path, value):
    result = run_cli("study", "--snapshots", value, "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2 and "--snapshots must be from 0 to 100" in result.stderr
    assert not (tmp_path / "x.db").exists()
