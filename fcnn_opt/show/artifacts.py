"""Each trial's picture as an Optuna artifact, shown by optuna-dashboard, drawn off the critical path.

:class:`TrialPictures` decides which finished trials get a picture (``all``, ``complete`` by
default, ``best``: each trial that beat this process's best so far, or ``none``) and draws
it with :func:`fcnn_opt.show.pictures.response_png`. On the fast path (see
:mod:`fcnn_opt.store.optuna_internals`) the picture is drawn by a background process while
training goes on: the trial's end-write already links the artifact to the trial, and the
file follows a few milliseconds later. :meth:`TrialPictures.close` waits for the last ones;
a picture that cannot be drawn, or a renderer that dies, never fails a trial (a small
picture saying why takes its place). On Optuna's public API the picture is drawn and
uploaded with ``optuna.artifacts.upload_artifact`` before the trial is told.

The artifact folder (see :func:`fcnn_opt.store.artifact_files.artifact_dir`) also holds each
trial's weights; ``python -m fcnn_opt dashboard`` serves it.
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from fcnn_opt.show.figures._common import safe_name
from fcnn_opt.show.renderer import Renderer, draw
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.artifact_files import make_folder, open_artifact_store, write_artifact

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.training.loop import TrainResult

__all__ = ["PICTURE_MODES", "TrialPictures", "picture_mode"]

PICTURE_MODES = ("all", "complete", "best", "none")


def picture_mode(value: str | bool | None) -> str:
    """``True``/``False`` (the older ``artifacts=`` flag) or a mode name, checked."""
    if value is True or value is None:
        return "complete"
    if value is False:
        return "none"
    if value not in PICTURE_MODES:
        raise ValueError(f"Unknown picture mode {value!r}. Expected one of {', '.join(PICTURE_MODES)}.")
    return value


def picture_name(trial_number: int, dataset: str) -> str:
    """The artifact file name of trial ``trial_number``'s picture on ``dataset``."""
    return f"response_trial{trial_number}_{safe_name(dataset)}.png"


def _placeholder(reason: str) -> bytes:
    """A small picture that says why the real one is missing."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 60), "#f4f4f4")
    ImageDraw.Draw(image).text((10, 20), f"no picture: {reason[:90]}", fill="#aa0000")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TrialPictures:
    """Pictures of finished trials into the artifact folder ``folder``; see the module docstring.

    ``background``: draw in a separate process (default: on the fast path only, where the
    trial's end-write can link a file that does not exist yet).
    """

    def __init__(self, folder: str | Path, mode: str = "complete", *, background: bool | None = None):
        make_folder(folder)  # the folder exists before the first trial ends
        self.folder = Path(folder)
        self.mode = picture_mode(mode)
        self.background = internals.fast_path() if background is None else background
        self.best: float | None = None
        self._renderer = None
        self._lock = threading.Lock()
        self.drawn = 0
        self.failed: list[str] = []

    def wants(self, state: str, value: float | None, maximize: bool = False) -> bool:
        """Whether a trial that ended ``state`` ("complete", "pruned", "failed") gets a picture."""
        if self.mode == "all":
            return True
        if self.mode == "none" or state != "complete":
            return False
        if self.mode == "complete":
            return True
        better = self.best is None or (value > self.best if maximize else value < self.best)
        if better:
            self.best = value
        return better

    def submit(self, trial: optuna.Trial, result: TrainResult, reporter, state: str, value: float | None,
               *, dataset_args: dict, maximize: bool = False) -> None:
        """Picture ``trial`` (if its state asks for one), linked to it through ``reporter``."""
        import numpy as np

        if not self.wants(state, value, maximize):
            return
        weights = result.weights()
        if not all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in weights):
            reporter.store({"artifact_error": "weights are not finite; no picture"})
            return
        value_text = f", value {value:.4g}" if value is not None else ""
        job = {"dataset": dataset_args, "weights": weights, "activation": result.config.activation,
               "train_loss": list(result.train_loss), "val_loss": list(result.val_loss),
               "title": result.description(["lib", "units", "activation", "optimizer", "lr", "epochs"]),
               "subtitle": f"trial {trial.number} ({state}{value_text}), {result.dataset.name}, "
                           f"{result.epochs_run} epochs"}
        jobs = [(picture_name(trial.number, result.dataset.name), job)]
        if result.snapshots:  # the boundary as it learns: a second, animated picture
            jobs.append((picture_name(trial.number, result.dataset.name).replace("response_", "learning_", 1),
                         {**job, "snapshots": result.snapshots, "weights": None}))
        for name, one in jobs:
            if self.background:
                artifact_id = str(uuid.uuid4())  # hex and dashes only: optuna-dashboard serves no other ids
                reporter.store_system(dict([internals.artifact_attr(artifact_id, name)]))
                self._start().submit(artifact_id, str(self.folder), one)
                continue
            try:
                self._upload_now(trial, name, one)
            except Exception as exc:  # a picture is a bonus: never lose a trial over it
                self._note_failure(f"trial {trial.number}: {type(exc).__name__}: {exc}")
                reporter.store({"artifact_error": f"{type(exc).__name__}: {exc}"[:500]})

    def _upload_now(self, trial, name: str, job: dict) -> None:
        from optuna.artifacts import upload_artifact

        png = draw(job)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(png)
            upload_artifact(artifact_store=open_artifact_store(self.folder), file_path=str(path),
                            study_or_trial=trial)
        self.drawn += 1

    def prepare(self, dataset_args: dict) -> None:
        """Start the background renderer now and have it build the dataset while the first
        trials train (on scikit-learn's tables that imports scikit-learn: 0.8 s that a short
        study otherwise waited for at its end)."""
        if self.background and self.mode != "none":
            self._start().prepare(dataset_args)

    def _start(self):
        if self._renderer is None:
            self._renderer = Renderer(self._rendered)
        return self._renderer

    def _rendered(self, artifact_id: str, error: str | None) -> None:
        """The renderer's answer (from its reader thread)."""
        with self._lock:
            if error is None:
                self.drawn += 1
                return
            self._note_failure(error)
        try:  # the trial already links this artifact: give it a picture that says why
            write_artifact(self.folder, artifact_id, _placeholder(error))
        except Exception:
            pass

    def _note_failure(self, message: str) -> None:
        if not self.failed:
            print(f"fcnn_opt: a trial picture could not be drawn ({message}); the trials are not affected",
                  file=sys.stderr)
        self.failed.append(message)

    def close(self) -> None:
        """Wait for the pictures still being drawn, then stop the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
