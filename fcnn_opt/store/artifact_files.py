"""Files beside a study: its artifact folder, and each trial's run file in it.

Artifacts live in an :class:`optuna.artifacts.FileSystemArtifactStore`:
``<database dir>/artifacts/`` for SQLite and journal files, ``studies/artifacts/`` for
server databases (PostgreSQL, MySQL), unless a folder is given. They hold each trial's run
file (always) and its picture (see :mod:`fcnn_opt.show.artifacts`).

A trial's run file is one ``.npz``: its final weights (float32 ``W0, b0, W1, b1, ...``) and
its per-epoch histories (``train_loss``, ``val_loss``, ``val_accuracy``). It is written with
the artifact store's public ``write`` and named by the trial's small user attribute
:data:`RUN_FILE_ATTR` (``{"artifact_id", "folder"}``). Release 0.1.0 kept both in the trial
row as JSON (about 14 KB of weights and 0.7 KB of histories a trial on W2); those were 80 %
of a study's database, and optuna-dashboard loads every user attribute of every trial it
lists. The validation metric stays in the trial row as Optuna's intermediate values (what
pruners and the dashboard's charts read). Every reader goes through :func:`load_weights`
and :func:`load_histories`, which also read the 0.1.0 attributes::

    >>> from fcnn_opt.store.artifact_files import artifact_dir
    >>> artifact_dir("sqlite:///studies/fcnn_opt.db").as_posix()
    'studies/artifacts'
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

from fcnn_opt.store.storages import default_url, sqlite_path

DEFAULT_ARTIFACT_DIR = Path("studies/artifacts")
RUN_FILE_ATTR = "run_file"  # {"artifact_id": ..., "folder": absolute path when written}
LEGACY_WEIGHTS_ATTR = "weights"  # release 0.1.0: [[W, b], ...] as JSON lists
HISTORIES = ("train_loss", "val_loss", "val_accuracy")  # per-epoch lists (0.1.0: user attributes)
ARTIFACTS_ENV = "FCNN_OPT_ARTIFACTS"  # where to look for weights when the stored folder is gone


class WeightsNotFound(LookupError):
    """A trial whose weights cannot be read; the message says where they were looked for."""


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


def make_folder(directory: str | Path) -> Path:
    """Create the artifact folder (a folder that cannot be made fails before any trial)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_artifact(folder: str | Path, artifact_id: str, body: bytes) -> None:
    """Write a file into a FileSystemArtifactStore folder as its ``write`` does (the file is
    named by the artifact id, in the folder), atomically, and without importing
    ``optuna.artifacts`` (about 0.13 s: it looks for boto3 and Google Cloud) into every
    worker and renderer process. Reading stays with Optuna's store (:func:`load_weights`),
    so a change of its layout shows up there and in the tests."""
    path = Path(folder) / artifact_id
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(body)
    os.replace(temporary, path)  # a reader never sees half a file


def save_run(folder: str | Path, weights, histories: dict[str, list], repeats=(),
             snapshots: dict | None = None, state: dict | None = None,
             arrays: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write a trial's ``[(W, b), ...]`` and its histories (lists with None for a missing
    value) into the artifact folder as one .npz; returns the pointer to keep as the trial's
    :data:`RUN_FILE_ATTR` user attribute. ``state``: the optimiser's state to continue the
    run from (``weights``, ``moments``, ``steps``, ``epoch`` and ``epoch_seconds``, which may be
    those of an earlier epoch than the run's last; see :func:`load_state`). ``arrays``: more
    named arrays to keep (a cross-validated trial's out-of-fold predictions; see
    :func:`load_run_array`)."""
    import numpy as np

    extra = {name: np.asarray(value) for name, value in (arrays or {}).items()}
    arrays = weight_arrays(weights)
    arrays.update(extra)
    if state is not None:
        arrays.update(weight_arrays(state["weights"], prefix=STATE_PREFIX))
        for i, moment in enumerate(state["moments"]):
            arrays[f"{STATE_PREFIX}m{i}"] = np.asarray(moment, dtype=np.float32)
        arrays[f"{STATE_PREFIX}steps"] = np.array(state["steps"], dtype=np.int64)
        arrays[f"{STATE_PREFIX}epoch"] = np.array(state["epoch"], dtype=np.int64)
        arrays[f"{STATE_PREFIX}epoch_seconds"] = np.asarray(state["epoch_seconds"], dtype=np.float64)
    for r, extra in enumerate(repeats, start=1):  # a trial with seed repeats: each network
        arrays.update(weight_arrays(extra, prefix=repeat_prefix(r)))
    for epoch, snapshot in (snapshots or {}).items():  # the network as it learned
        arrays.update(weight_arrays(snapshot, prefix=f"{SNAPSHOT_PREFIX}{epoch}_"))
    for name, values in histories.items():
        if values is not None:
            arrays[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    body = io.BytesIO()
    np.savez(body, **arrays)
    artifact_id = str(uuid.uuid4())  # as Optuna names artifacts
    write_artifact(folder, artifact_id, body.getvalue())
    return {"artifact_id": artifact_id, "folder": str(Path(folder).resolve())}


SNAPSHOT_PREFIX = "epoch"  # run-file arrays epoch<N>_W0, epoch<N>_b0, ...: weights after epoch N
# run-file arrays state_W0, state_b0, ..., state_m0, state_m1, state_steps, state_epoch, state_epoch_seconds
STATE_PREFIX = "state_"
# A trial that continues another from its state: {"trial": the number it continues, "epochs": added}
CONTINUES_ATTR = "continues"


def load_state(trial, folder: str | Path | None = None) -> dict[str, Any] | None:
    """Where a trial's run ended, to continue it: ``epoch``, ``weights``, ``moments`` (the
    optimiser's buffers), ``steps`` and ``histories`` (``train_loss``, ``val_loss``,
    ``val_accuracy``, ``epoch_seconds``): the fields of
    :class:`fcnn_opt.training.backends._base.TrainState`. None for a trial that kept no state
    (only studies whose epochs are a resource and which continue their best trials keep it)."""
    if not trial.user_attrs.get(RUN_FILE_ATTR):
        return None
    arrays = _run_file(trial, folder)
    if f"{STATE_PREFIX}steps" not in arrays:
        return None
    moments = [arrays[f"{STATE_PREFIX}m{i}"] for i in range(2) if f"{STATE_PREFIX}m{i}" in arrays]
    epoch = int(arrays[f"{STATE_PREFIX}epoch"])
    histories = {name: values[:epoch] for name, values in load_histories(trial, folder).items()}
    histories["epoch_seconds"] = [float(v) for v in arrays[f"{STATE_PREFIX}epoch_seconds"]]
    return {"epoch": epoch, "weights": weights_from_arrays(arrays, STATE_PREFIX),
            "moments": [m.copy() for m in moments], "steps": int(arrays[f"{STATE_PREFIX}steps"]),
            "histories": histories}


def load_snapshots(trial, folder: str | Path | None = None) -> dict[int, list[tuple[Any, Any]]]:
    """A trial's snapshots (``study --snapshots N``): ``{epoch: [(W, b), ...]}``, by epoch; {}
    for a trial that kept none."""
    if not trial.user_attrs.get(RUN_FILE_ATTR):
        return {}
    arrays = _run_file(trial, folder)
    epochs = sorted({int(name[len(SNAPSHOT_PREFIX):].split("_", 1)[0]) for name in arrays
                     if name.startswith(SNAPSHOT_PREFIX) and name.endswith("_W0")})
    return {e: weights_from_arrays(arrays, f"{SNAPSHOT_PREFIX}{e}_") for e in epochs}


def repeat_prefix(repeat: int) -> str:
    """Array-name prefix of seed repeat ``repeat`` in a run file: the first network (repeat 0,
    the trial's own seed) has none, so a run file without repeats reads as before."""
    return f"r{repeat}_" if repeat else ""


def weight_arrays(weights, prefix: str = "") -> dict[str, Any]:
    """``[(W, b), ...]`` as the float32 arrays ``W0, b0, W1, b1, ...`` of an .npz file."""
    import numpy as np

    arrays = {}
    for i, (W, b) in enumerate(weights):
        arrays[f"{prefix}W{i}"] = np.asarray(W, dtype=np.float32)
        arrays[f"{prefix}b{i}"] = np.asarray(b, dtype=np.float32)
    return arrays


def weights_from_arrays(arrays, prefix: str = "") -> list[tuple[Any, Any]]:
    """The inverse of :func:`weight_arrays`, from anything indexed by name (an .npz, a dict)."""
    names = arrays.files if hasattr(arrays, "files") else arrays
    layers = sum(1 for name in names if name.startswith(f"{prefix}W"))
    return [(arrays[f"{prefix}W{i}"], arrays[f"{prefix}b{i}"]) for i in range(layers)]


def load_weights(trial, folder: str | Path | None = None, repeat: int = 0) -> list[tuple[Any, Any]]:
    """A finished trial's final weights as float32 ``[(W, b), ...]``; with seed repeats,
    those of network ``repeat`` (0: the one trained with the trial's own seed).

    Read from the trial's run file in the artifact folder: ``folder`` if given, else the one
    recorded when it was written, else ``$FCNN_OPT_ARTIFACTS``; or from the JSON ``weights``
    attribute of studies written by release 0.1.0.
    """
    import numpy as np

    legacy = trial.user_attrs.get(LEGACY_WEIGHTS_ATTR)
    if legacy and repeat == 0:
        return [(np.asarray(W, dtype=np.float32), np.asarray(b, dtype=np.float32)) for W, b in legacy]
    weights = weights_from_arrays(_run_file(trial, folder), repeat_prefix(repeat))
    if not weights:
        raise WeightsNotFound(f"Trial {trial.number} has no network for seed repeat {repeat}.")
    return weights


def load_networks(trial, folder: str | Path | None = None) -> list[list[tuple[Any, Any]]]:
    """Every network a finished trial's run file keeps, as ``[(W, b), ...]`` each: the trial's
    own first, then those of its other seeds or folds (a cross-validated trial keeps one per fold)."""
    arrays = _run_file(trial, folder)
    networks = []
    while weights := weights_from_arrays(arrays, repeat_prefix(len(networks))):
        networks.append(weights)
    return networks


def load_histories(trial, folder: str | Path | None = None) -> dict[str, list]:
    """A trial's per-epoch ``train_loss``, ``val_loss`` and (classification) ``val_accuracy``
    as lists (None where a value was not finite); {} for a trial that stores none.

    From the run file (see :func:`load_weights` for where it is looked for), or from the
    user attributes of studies written by release 0.1.0 and of objectives run without an
    artifact folder."""
    import numpy as np

    attrs = trial.user_attrs
    if any(name in attrs for name in HISTORIES):
        return {name: list(attrs[name]) for name in HISTORIES if name in attrs}
    if not attrs.get(RUN_FILE_ATTR):
        return {}
    data = _run_file(trial, folder)
    return {name: [None if not np.isfinite(v) else float(v) for v in data[name]]
            for name in HISTORIES if name in data}


def load_run_array(trial, name: str, folder: str | Path | None = None):
    """One more array a trial's run file keeps (``save_run(arrays=...)``), e.g. a
    cross-validated trial's out-of-fold predictions; None when it keeps none by that name."""
    if not trial.user_attrs.get(RUN_FILE_ATTR):
        return None
    return _run_file(trial, folder).get(name)


_CACHE: dict[str, dict] = {}  # artifact id -> arrays: a run file is read once per process
_CACHE_SIZE = 4096


def _run_file(trial, folder) -> dict:
    pointer = trial.user_attrs.get(RUN_FILE_ATTR)
    if not pointer:
        raise WeightsNotFound(f"Trial {trial.number} stores no weights ({trial.state.name}); only trials "
                              "trained by fcnn_opt's Objective have them.")
    return read_run_file(pointer, folder, f"Trial {trial.number}'s")


def read_run_file(pointer: dict, folder: str | Path | None = None, whose: str = "The") -> dict:
    """The arrays of the run file ``pointer`` names (as :func:`save_run` returned it), looked
    for in ``folder``, then where it was written, then ``$FCNN_OPT_ARTIFACTS``."""
    import numpy as np

    artifact_id = pointer["artifact_id"]
    if artifact_id in _CACHE:
        return _CACHE[artifact_id]
    tried = []
    for candidate in _folders(folder, pointer):
        try:
            with open_artifact_store(candidate).open_reader(artifact_id) as reader:
                with np.load(io.BytesIO(reader.read())) as loaded:
                    data = {name: loaded[name] for name in loaded.files}
        except Exception as exc:  # missing file, another folder: look in the next place
            tried.append(f"{candidate} ({type(exc).__name__})")
            continue
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[artifact_id] = data
        return data
    raise WeightsNotFound(f"{whose} run file ({artifact_id}) was not found in "
                          f"{', '.join(tried) or 'any artifact folder'}; give the study's artifact folder "
                          f"(--artifact-dir, or ${ARTIFACTS_ENV}).")


def _folders(given, pointer: dict):
    seen = set()
    for folder in (given, pointer.get("folder"), os.environ.get(ARTIFACTS_ENV)):
        if folder and Path(folder).is_dir() and Path(folder).resolve() not in seen:
            seen.add(Path(folder).resolve())
            yield Path(folder)


# Your own data travels with the study: a copy of a data file up to this size is kept in the
# artifact store, so a worker on a machine without the file reads it from there.
DATA_COPY_LIMIT = 50 * 1024 * 1024
DATA_COPY_ATTR = "data_copy"  # study user attribute: {artifact_id, sha256, name, folder}


def save_data_copy(folder: str | Path, path: str | Path, sha256: str) -> dict[str, Any] | None:
    """Keep a copy of the data file ``path`` (whose hash is ``sha256``) in the artifact folder;
    returns the pointer to store with the study, or None for a file above
    :data:`DATA_COPY_LIMIT` (workers then need the file at the same path)."""
    path = Path(path)
    if path.stat().st_size > DATA_COPY_LIMIT:
        return None
    artifact_id = f"data-{sha256[:32]}"  # the same content is stored once
    target = Path(folder) / artifact_id
    if not target.exists():
        write_artifact(folder, artifact_id, path.read_bytes())
    return {"artifact_id": artifact_id, "sha256": sha256, "name": path.name, "folder": str(Path(folder).resolve())}


def fetch_data_copy(pointer: dict[str, Any], folder: str | Path | None = None) -> Path:
    """A local file with the study's data, from its copy in the artifact folder (``folder``, the
    one recorded, or ``$FCNN_OPT_ARTIFACTS``), checked against its hash; cached under
    ``~/.cache/fcnn_opt/data`` so it is read from the store once per machine."""
    import hashlib

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fcnn_opt" / "data"
    local = cache / f"{pointer['sha256'][:16]}-{pointer['name']}"
    if local.is_file():
        return local
    for candidate in _folders(folder, pointer):
        source = candidate / pointer["artifact_id"]
        if source.is_file():
            body = source.read_bytes()
            if hashlib.sha256(body).hexdigest() != pointer["sha256"]:
                raise WeightsNotFound(f"The study's data copy in {candidate} does not match its hash.")
            cache.mkdir(parents=True, exist_ok=True)
            staged = local.with_suffix(local.suffix + ".part")
            staged.write_bytes(body)
            os.replace(staged, local)
            return local
    raise WeightsNotFound(f"The study's data file {pointer['name']!r} is neither on this machine nor in its "
                          f"artifact folder; give the shared folder (--artifact-dir, or ${ARTIFACTS_ENV}).")


def local_data_args(args: dict, study_attrs: dict, folder: str | Path | None = None) -> dict:
    """``[dataset]`` arguments that work on this machine: a data file that is not at its
    recorded path is read from the study's copy in the artifact folder instead."""
    path = args.get("path")
    pointer = study_attrs.get(DATA_COPY_ATTR)
    if not path or Path(path).is_file() or not pointer or pointer.get("sha256") != args.get("sha256"):
        return args
    return {**args, "path": str(fetch_data_copy(pointer, folder))}
