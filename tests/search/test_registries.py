"""The registries of samplers, pruners, objectives, export formats and storages: what the
command line offers and what its errors list is exactly what they hold, and a plugin
(``FCNN_OPT_PLUGINS``) adds a sampler and an export format that the command line then uses."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_cli, write_toml

from fcnn_opt.cli import commands
from fcnn_opt.search.export import FORMATS
from fcnn_opt.search.metrics import OBJECTIVES, register_objective
from fcnn_opt.search.pruners import PRUNERS, make_pruner, register_pruner
from fcnn_opt.search.registry import ENTRY_POINT_GROUP, PLUGINS_ENV, RegistryError
from fcnn_opt.search.samplers import SAMPLERS, make_sampler, register_sampler
from fcnn_opt.search.space import SpaceError, parse_spec
from fcnn_opt.store import storages

# A plugin as a user writes one: a sampler (Optuna's random sampler under a class of its own,
# which notes each draw in $PLUGIN_LOG) and an export format (the weights as JSON).
PLUGIN = textwrap.dedent('''
    """A plugin for the registry tests: the sampler "noted_random" and the export format "json"."""
    import json
    import os

    import numpy as np
    import optuna

    from fcnn_opt.search.export import register_format
    from fcnn_opt.search.samplers import register_sampler


    class NotedRandomSampler(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            with open(os.environ["PLUGIN_LOG"], "a") as fh:
                fh.write(f"{trial.number} {name}\\n")
            return super().sample_independent(study, trial, name, distribution)


    register_sampler("noted_random", lambda seed, spec, concurrent: NotedRandomSampler(seed=seed),
                     description="random draws, noted in $PLUGIN_LOG", multi_objective=True)


    def write_json(model, path):
        path.write_text(json.dumps({"activation": model.activation, "task": model.task,
                                    "weights": [[W.tolist(), b.tolist()] for W, b in model.weights]}))
        return [path]


    def read_json(path, X, task):
        from fcnn_opt.search.models import TrainedModel

        data = json.loads(path.read_text())
        weights = [(np.array(W, np.float32), np.array(b, np.float32)) for W, b in data["weights"]]
        return TrainedModel(weights, data["activation"], data["task"], "", -1, None).output(X)


    register_format("json", write_json, read_json, description="json (the weights as JSON)")
''')

STUDY = """
[study]
name = "plugged"
sampler = "random"
pruner = "none"
n_trials = 3
seed = 1

[dataset]
name = "circles"
n_points = 200

[params]
epochs = 4
units = [2, 4]
lr = { low = 1e-3, high = 1e-1, log = true }
"""


def _plugin_env(tmp_path: Path, **extra) -> dict:
    (tmp_path / "registry_test_plugin.py").write_text(PLUGIN)
    return {PLUGINS_ENV: "registry_test_plugin",
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **extra}


def test_a_plugin_sampler_and_export_format_work_through_the_command_line(tmp_path):
    import optuna

    env = _plugin_env(tmp_path, PLUGIN_LOG=str(tmp_path / "draws.log"))
    config = write_toml(tmp_path / "plugged.toml", STUDY)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--sampler", "noted_random", "--no-progress",
                   "--no-artifacts", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="plugged", storage=url).trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    noted = (tmp_path / "draws.log").read_text().split()
    assert {int(n) for n in noted[::2]} == {t.number for t in trials}  # every trial drawn by the plugin
    assert {"lr", "units"} <= set(noted[1::2])

    out = tmp_path / "best.json"
    done = run_cli("export", "--study-name", "plugged", "--storage", url, "--trial", trials[1].number,
                   "--format", "json", "--out", out, cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert f"exported  trial {trials[1].number} of 'plugged' (json)" in done.stdout
    import fcnn_opt

    model = fcnn_opt.load_model(url, "plugged", trial=trials[1].number)
    data = json.loads(out.read_text())
    assert data["activation"] == model.activation and len(data["weights"]) == len(model.weights)
    for (W, b), (W2, b2) in zip(model.weights, data["weights"], strict=True):
        assert np.array_equal(W, np.array(W2, np.float32)) and np.array_equal(b, np.array(b2, np.float32))


def test_without_the_plugin_its_names_are_refused_with_the_registry_s_list(tmp_path):
    done = run_cli("study", "--sampler", "noted_random", cwd=tmp_path)
    assert done.returncode == 2 and "invalid choice: 'noted_random'" in done.stderr
    assert _choices(done.stderr) == SAMPLERS.names()


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    done = run_cli("datasets", cwd=tmp_path, **{PLUGINS_ENV: "no_such_fcnn_opt_plugin"})
    assert done.returncode == 2, done.stderr
    assert "no_such_fcnn_opt_plugin" in done.stderr and PLUGINS_ENV in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _choices(stderr: str) -> tuple[str, ...]:
    """The names argparse lists in "invalid choice: 'x' (choose from a, b, ...)"."""
    listed = re.search(r"\(choose from (.*)\)", stderr).group(1)
    return tuple(name.strip().strip("'") for name in listed.split(","))


@pytest.mark.parametrize("argv,registry", [
    (["study", "--sampler", "nope"], SAMPLERS),
    (["study", "--pruner", "nope"], PRUNERS),
    (["export", "--study-name", "x", "--format", "nope", "--out", "x"], FORMATS),
])
def test_the_command_line_offers_exactly_the_registry_s_names(argv, registry, capsys):
    with pytest.raises(SystemExit) as exc:
        commands.build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert _choices(capsys.readouterr().err) == registry.names()


def test_a_registered_sampler_is_offered_and_built_then_gone(capsys):
    import optuna

    register_sampler("test_only_random", lambda seed, spec, concurrent: optuna.samplers.RandomSampler(seed=seed))
    try:
        args = commands.build_parser().parse_args(["study", "--sampler", "test_only_random"])
        assert args.sampler == "test_only_random"
        assert isinstance(make_sampler("test_only_random", 3), optuna.samplers.RandomSampler)
        spec = parse_spec({"study": {"sampler": "test_only_random", "n_trials": 2}, "params": {"units": [2, 4]}})
        assert spec.sampler == "test_only_random" and not spec.uses_grid
        with pytest.raises(SpaceError, match="cannot optimise several objectives"):  # not multi_objective
            parse_spec({"study": {"sampler": "test_only_random", "objectives": ["val_loss", "n_params"]}})
    finally:
        SAMPLERS.unregister("test_only_random")
    assert "test_only_random" not in SAMPLERS.names()
    with pytest.raises(RegistryError, match="registered already"):
        register_sampler("tpe", lambda seed, spec, concurrent: None)


def test_error_messages_list_the_registry_s_names():
    with pytest.raises(RegistryError) as exc:
        make_sampler("nope", 0)
    assert str(exc.value) == f"Unknown sampler 'nope'. Valid samplers: {', '.join(SAMPLERS.names())}."
    with pytest.raises(RegistryError) as exc:
        make_pruner("nope")
    assert str(exc.value) == f"Unknown pruner 'nope'. Valid pruners: {', '.join(PRUNERS.names())}."
    for key, registry in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        with pytest.raises(SpaceError) as exc:
            parse_spec({"study": {key: "nope"}}, source="s.toml")
        assert f"expected one of {{{', '.join(registry.names())}}}" in str(exc.value)
    with pytest.raises(SpaceError) as exc:
        parse_spec({"study": {"sampler": "cmaes", "objectives": ["val_loss", "n_params"]}}, source="s.toml")
    assert f"Use one of {{{', '.join(SAMPLERS.names(multi_objective=True))}}}" in str(exc.value)
    from fcnn_opt.search.export import export_model
    from fcnn_opt.search.models import ModelError

    with pytest.raises(ModelError) as exc:
        export_model(object(), "nope", "x")
    assert str(exc.value) == f"Unknown format 'nope'. Expected one of {', '.join(FORMATS.names())}."


def test_a_registered_objective_is_measured_and_has_its_direction():
    register_objective("widest_layer", lambda result: max(W.shape[1] for W, _ in result.weights()), "maximize")
    try:
        spec = parse_spec({"study": {"sampler": "tpe", "objectives": ["val_loss", "widest_layer"]},
                           "params": {"units": [2, 4]}})
        assert spec.directions == ["minimize", "maximize"] and spec.metric == "val_loss"
        with pytest.raises(SpaceError, match="expected one of"):  # per-epoch metrics come from training
            parse_spec({"study": {"metric": "widest_layer"}})
    finally:
        OBJECTIVES.unregister("widest_layer")


def test_the_built_in_capabilities():
    assert SAMPLERS.names(multi_objective=True) == ("grid", "random", "tpe", "nsga2")
    assert SAMPLERS.names(drawn_on_mirror=True) == ("random", "tpe")
    assert SAMPLERS.names(grid=True) == ("grid",)
    assert PRUNERS.names(prunes=False) == ("none",)
    assert OBJECTIVES.names(per_epoch=True) == ("val_loss", "val_accuracy")
    assert FORMATS.names(ensemble=True) == ("npz", "torch", "onnx")
    assert {FORMATS.get(name).suffix for name in ("torch", "keras")} == {".pt2", ".keras"}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_mirror_does_what_the_registry_entries_say(tmp_path):
    """The runner's pruning mirror reads the capability flags of the study's entries, not
    Optuna's class names: a TPE registered again without ``drawn_on_mirror`` is asked of the
    study, a median pruner without ``decided_on_mirror`` gets no mirror at all."""
    import optuna

    from fcnn_opt.search.mirror import PruningMirror
    from fcnn_opt.search.plan import RunPlan
    from fcnn_opt.search.trial_source import TrialSource
    from fcnn_opt.store import optuna_internals

    if not optuna_internals.fast_path():
        pytest.skip("no mirror on this Optuna (or FCNN_OPT_PUBLIC_API=1)")
    tpe, median = SAMPLERS.get("tpe"), PRUNERS.get("median")
    register_sampler("tpe_elsewhere", tpe.factory, multi_objective=True)
    register_pruner("median_elsewhere", median.factory)
    try:
        study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", sampler=make_sampler("tpe", 0),
                                    pruner=make_pruner("median"))
        assert PruningMirror(study, "tpe", "median").samples
        assert not PruningMirror(study, "tpe_elsewhere", "median").samples
        assert not PruningMirror(study, "random", "median").samples_from_history
        for sampler, pruner, mirrored, drawn in (("tpe", "median", True, True), ("tpe_elsewhere", "median", True, False),
                                                 ("tpe", "median_elsewhere", False, False)):
            spec = parse_spec({"study": {"sampler": sampler, "pruner": pruner}, "params": {"units": [2, 4]}})
            source = TrialSource(study, RunPlan.of(spec))
            assert (source.mirror is not None) == mirrored, (sampler, pruner)
            assert (source.mirror is not None and source.mirror.samples) == drawn, (sampler, pruner)
    finally:
        SAMPLERS.unregister("tpe_elsewhere")
        PRUNERS.unregister("median_elsewhere")


def test_storages_are_found_by_scheme_and_a_registered_one_opens():
    import optuna

    assert storages.storage_kind("postgres://u@h/db").name == "postgresql"
    assert storages.storage_kind("mariadb://u@h/db").name == "mysql"
    assert storages.storage_kind("journal:x.log").name == "journal"
    assert storages.storage_kind("sqlite:///x.db").local_file
    assert storages.storage_kind("oracle://h/db") is None  # opened by SQLAlchemy as it is
    opened = []

    def open_memory(url, *, heartbeat, read_only):
        opened.append((url, heartbeat, read_only))
        return optuna.storages.InMemoryStorage()

    storages.register_storage("memtest", ("memtest",), open_memory)
    try:
        assert isinstance(storages.open_storage("memtest://here", read_only=True), optuna.storages.InMemoryStorage)
        assert opened == [("memtest://here", False, True)]
        with pytest.raises(storages.StorageError, match="registered already"):
            storages.register_storage("other", ("sqlite",), open_memory)
    finally:
        del storages.STORAGES["memtest"]


def test_the_docs_list_every_built_in_entry():
    text = (ROOT / "docs" / "extending.md").read_text()
    for registry in (SAMPLERS, PRUNERS, OBJECTIVES, FORMATS):
        for name in registry.names():
            assert f"`{name}`" in text, name
    for name in storages.STORAGES:
        assert f"`{name}`" in text, name
    assert PLUGINS_ENV in text and ENTRY_POINT_GROUP in text
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"--format ([a-z]+(?:\|[a-z]+)+) ", readme).group(1).split("|")  # the README's list
    assert sorted(listed) == sorted(FORMATS.names())
