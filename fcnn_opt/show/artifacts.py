"""Each trial's response-surface picture as an Optuna artifact, shown by optuna-dashboard.

Artifacts live in a :class:`optuna.artifacts.FileSystemArtifactStore` next to the study
database: ``<database dir>/artifacts/`` for SQLite and journal files, ``studies/artifacts/``
for server databases (PostgreSQL, MySQL), unless a directory is given. ``run_study``
uploads one PNG per finished trial; ``python -m fcnn_opt dashboard`` serves them::

    >>> from fcnn_opt.show.artifacts import artifact_dir
    >>> artifact_dir("sqlite:///studies/fcnn_opt.db").as_posix()
    'studies/artifacts'
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from fcnn_opt.store.storages import default_url, sqlite_path

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.training.loop import TrainResult

DEFAULT_ARTIFACT_DIR = Path("studies/artifacts")
ARTIFACT_DPI = 72  # a dashboard thumbnail and its full view; about 100 KB per trial


def artifact_dir(storage_url: str | None = None) -> Path:
    """Where a storage's artifacts go: an ``artifacts/`` folder beside a database file."""
    url = storage_url or default_url()
    path = sqlite_path(url)
    if path is None and url.startswith("journal:"):
        path = Path(url[len("journal:"):])
    if path is None or str(path) in (":memory:", ""):
        return DEFAULT_ARTIFACT_DIR
    return path.parent / "artifacts"


def open_artifact_store(directory: str | Path):
    """A FileSystemArtifactStore on ``directory`` (created if missing)."""
    from optuna.artifacts import FileSystemArtifactStore

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(directory))


class ResponseArtifact:
    """An ``on_trial_end`` hook: draw the trial's response surface and upload it.

    A picture that cannot be drawn (e.g. a diverged network) never fails the trial: the
    reason is kept in the trial's ``artifact_error`` user attribute.
    """

    def __init__(self, store, dpi: int = ARTIFACT_DPI):
        self.store = store
        self.dpi = dpi

    def __call__(self, trial: optuna.Trial, result: TrainResult) -> None:
        import numpy as np

        from fcnn_opt.show.figures._common import safe_name
        from fcnn_opt.show.figures._response import draw_response_mpl, response_data

        try:
            if not all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in result.weights()):
                trial.set_user_attr("artifact_error", "weights are not finite; no picture")
                return
            data = response_data(result)
            data = replace(data, subtitle=f"trial {trial.number}, {data.subtitle}")
            fig = draw_response_mpl(data)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"response_trial{trial.number}_{safe_name(result.dataset.name)}.png"
                fig.savefig(path, dpi=self.dpi)
                from optuna.artifacts import upload_artifact

                upload_artifact(artifact_store=self.store, file_path=str(path), study_or_trial=trial)
        except Exception as exc:  # a picture is a bonus: never lose a trial over it
            message = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"trial {trial.number}: no response picture ({message})", stacklevel=2)
            try:
                trial.set_user_attr("artifact_error", message[:500])
            except Exception:
                pass
