"""Each finished trial carries its response-surface PNG as an Optuna artifact."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import run_cli, write_toml
from optuna.artifacts import get_all_artifact_meta
from PIL import Image

from fcnn_opt.show.artifacts import artifact_dir

TINY = """
[study]
name = "tiny"
sampler = "grid"
pruner = "none"
[dataset]
name = "xor"
n_points = 200
[params]
epochs = 3
units = [2, 4]
"""


@pytest.mark.parametrize("url,expected", [
    ("sqlite:///studies/fcnn_opt.db", "studies/artifacts"),
    ("sqlite:////data/runs/x.db", "/data/runs/artifacts"),
    ("journal:/data/j/study.log", "/data/j/artifacts"),
    ("postgresql://user:pw@host/db", "studies/artifacts"),
    ("sqlite:///:memory:", "studies/artifacts"),
])
def test_artifact_folder_follows_the_storage(url, expected):
    assert artifact_dir(url) == Path(expected)


def test_every_finished_trial_has_its_picture(small_study):
    url, study = small_study
    folder = Path(url[len("sqlite:///"):]).parent / "artifacts"
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert any(t.state.name == "PRUNED" for t in finished) and any(t.state.name == "COMPLETE" for t in finished)
    for t in finished:
        metas = get_all_artifact_meta(t, storage=study._storage)
        assert len(metas) == 1, t.number
        meta = metas[0]
        assert meta.mimetype == "image/png" and meta.filename == f"response_trial{t.number}_circles.png"
        with Image.open(folder / meta.artifact_id) as image:
            assert image.format == "PNG" and image.size[0] > 600
        assert "artifact_error" not in t.user_attrs


def test_no_artifacts_flag_and_artifact_folder_option(tmp_path):
    config = write_toml(tmp_path / "tiny.toml", TINY)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--no-artifacts", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=url)
    assert all(not get_all_artifact_meta(t, storage=study._storage) for t in study.trials)
    assert not (tmp_path / "artifacts").exists()

    other = f"sqlite:///{tmp_path / 'b.db'}"
    done = run_cli("study", "--config", config, "--storage", other, "--artifacts", tmp_path / "pics",
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=other)
    ids = [m.artifact_id for t in study.trials for m in get_all_artifact_meta(t, storage=study._storage)]
    assert len(ids) == 2 and sorted(p.name for p in (tmp_path / "pics").iterdir()) == sorted(ids)
