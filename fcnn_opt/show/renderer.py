"""The picture renderer: a child process that draws trials' pictures while the parent trains.

    python -m fcnn_opt.show.renderer   # started by TrialPictures, never by hand

A plain subprocess (not multiprocessing), so that it never re-imports the parent's main
script or notebook. It reads jobs from stdin and answers on stdout, each message a pickle
behind its 4-byte length: a job is ``(artifact_id, folder, job dict)``, an answer
``(artifact_id, error or None)``. It runs at a lower priority than the training process
and ends when stdin closes, after the jobs it has. The parent hands jobs to a sending thread,
so training never waits on the pipe: with the renderer busy (its first job builds the
dataset, which for scikit-learn's tables imports scikit-learn), a full pipe blocked the
training process for 0.48 s of a 2.3 s study.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from fcnn_opt.show.pictures import animated_png, response_png
from fcnn_opt.store.artifact_files import write_artifact
from fcnn_opt.training.tables import build

_LENGTH = struct.Struct("!I")


def send(stream: BinaryIO, message: Any) -> None:
    """Write ``message`` to ``stream`` as a pickle behind its 4-byte length, and flush."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(body)) + body)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)


_datasets: dict[str, Any] = {}


def dataset_for(args: dict):
    """Each study's dataset, built once per process."""
    key = json.dumps(args, sort_keys=True)
    if key not in _datasets:
        _datasets[key] = build(args)
    return _datasets[key]


def draw(job: dict) -> bytes:
    """A job's picture: a PNG, or an animated PNG when the job carries snapshots."""
    common = {"title": job["title"], "subtitle": job["subtitle"]}
    data = dataset_for(job["dataset"])
    if job.get("snapshots"):
        return animated_png(data, job["snapshots"], job["activation"], job["train_loss"], job["val_loss"], **common)
    return response_png(data, job["weights"], job["activation"], job["train_loss"], job["val_loss"], **common)


class Renderer:
    """The parent's handle on a renderer process: ``submit`` jobs, get ``on_done(artifact_id,
    error)`` from a reader thread, ``close`` to wait for the rest."""

    command = (sys.executable, "-m", "fcnn_opt.show.renderer")

    def __init__(self, on_done: Callable[[str, str | None], None]):
        import subprocess

        self.on_done = on_done
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.process = subprocess.Popen(list(self.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=env)
        self.outstanding: set[str] = set()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True, name="picture-renderer")
        self._reader.start()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()  # jobs to send; None: no more
        self._sender = threading.Thread(target=self._send, daemon=True, name="picture-sender")
        self._sender.start()

    def submit(self, artifact_id: str, folder: str, job: dict) -> None:
        """Queue a job; it is sent to the renderer in the background."""
        with self._lock:
            self.outstanding.add(artifact_id)
        self._outbox.put((artifact_id, str(folder), job))

    def prepare(self, dataset_args: dict) -> None:
        """Have the renderer build the study's dataset now, while the first trials train."""
        self._outbox.put((None, "", {"dataset": dataset_args}))

    def _send(self) -> None:
        while (message := self._outbox.get()) is not None:
            try:
                send(self.process.stdin, message)
            except (BrokenPipeError, OSError, ValueError):
                if message[0] is not None:
                    self._done(message[0], "the picture renderer has stopped")

    def _done(self, artifact_id: str, error: str | None) -> None:
        with self._lock:
            if artifact_id not in self.outstanding:
                return
            self.outstanding.discard(artifact_id)
        self.on_done(artifact_id, error)

    def _read(self) -> None:
        while True:
            try:
                message = receive(self.process.stdout)
            except Exception:
                message = None
            if message is None:
                break
            self._done(*message)
        with self._lock:  # the renderer is gone: whatever it still had is lost
            lost = sorted(self.outstanding)
        for artifact_id in lost:
            self._done(artifact_id, f"the picture renderer exited (code {self.process.poll()})")

    def close(self) -> None:
        """Wait for every submitted picture, then for the process to end."""
        self._outbox.put(None)
        self._sender.join()
        try:
            self.process.stdin.close()
        except OSError:
            pass
        with self._lock:
            idle = not self.outstanding
        if idle:  # every picture is written: whatever it still prepares is not needed
            self.process.terminate()
        self._reader.join()
        self.process.wait()


def main() -> int:
    """The renderer process: draw each job read from stdin into the artifact folder and answer on
    stdout, at a lower priority, until stdin closes; returns the exit code (0)."""
    try:
        os.nice(5)  # training comes first
    except OSError:
        pass
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        message = receive(stdin)
        if message is None:
            return 0
        artifact_id, folder, job = message
        if artifact_id is None:  # prepare: build the dataset ahead of the first picture
            try:
                dataset_for(job["dataset"])
            except Exception:  # the first picture meets the same error and says so
                pass
            continue
        try:
            write_artifact(folder, artifact_id, draw(job))
            send(stdout, (artifact_id, None))
        except Exception as exc:  # answered, never fatal: the next picture may draw
            send(stdout, (artifact_id, f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(main())

