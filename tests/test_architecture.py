"""The package's shape: layers that import only downwards, no import cycles, and Optuna's
private names in one module only (fcnn_opt.store.optuna_internals)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "fcnn_opt.store.optuna_internals"

# Private names of other libraries than Optuna, each with the reason it is used.
NOT_OPTUNA = {
    ("fcnn_opt.training.backends._sklearn", "_optimizer"):
        "scikit-learn: partial_fit keeps its optimizer; deleting it makes the next call build one "
        "from the weights set by hand",
    ("fcnn_opt.cli.quick_exit", "_exit"): "the standard library: os._exit ends the process without teardown",
    ("fcnn_opt.cli.quick_exit", "_run_exitfuncs"):
        "the standard library: atexit's handlers, run before os._exit as a normal exit runs them",
}


def _architecture():
    spec = importlib.util.spec_from_file_location("make_architecture", ROOT / "docs" / "make_architecture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ARCH = _architecture()


def test_every_module_belongs_to_a_layer():
    for name in ARCH.modules():
        assert ARCH.layer_of(name) in ARCH.LAYERS, name


def test_no_layer_imports_a_layer_above_it():
    graph = ARCH.import_graph()
    wrong = []
    for source, targets in graph.items():
        for target in targets:
            if target == "fcnn_opt":  # the root only for __version__: it imports no layer at import time
                continue
            a, b = ARCH.layer_of(source), ARCH.layer_of(target)
            rank_a, rank_b = ARCH.LAYERS[a][0], ARCH.LAYERS[b][0]
            if rank_b > rank_a or (a != b and rank_a == rank_b):
                wrong.append(f"{source} ({a}) imports {target} ({b})")
    assert not wrong, "\n".join(wrong)


def test_the_root_package_imports_no_layer_at_import_time():
    tree = ast.parse((ROOT / "fcnn_opt" / "__init__.py").read_text())
    imported = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom | ast.Import)]
    assert all(isinstance(n, ast.Import) and n.names[0].name == "importlib" or
               isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in imported)


def test_no_import_cycles():
    graph = ARCH.import_graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ re-exporting its own submodule is not a cycle of the code.
    cycles = [c for c in cycles if not all(part.startswith(c.split(" -> ")[0]) for part in c.split(" -> "))]
    assert not cycles, "\n".join(cycles)


def _private_uses(path: Path, module: str) -> list[tuple[str, str]]:
    """``(where, private name)`` for each use of a private name from outside its own object:
    ``import optuna._x``, ``from optuna.x._y import``, ``from optuna import _x``, ``obj._x``
    (not on self, cls or super()), and ``getattr/hasattr/setattr(obj, "_x")``."""
    found = []

    def private(parts):
        return [p for p in parts if p.startswith("_") and not p.startswith("__")]

    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{module}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "optuna":
                    found += [(where, p) for p in private(alias.name.split("."))]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optuna":
            found += [(where, p) for p in private(node.module.split(".") + [a.name for a in node.names])]
        elif isinstance(node, ast.Attribute) and private([node.attr]):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                continue
            if (module, node.attr) not in NOT_OPTUNA:
                found.append((where, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2 \
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str) \
                and private([node.args[1].value]) \
                and not (isinstance(node.args[0], ast.Name) and node.args[0].id in ("self", "cls")):
            found.append((where, node.args[1].value))
    return found


def test_private_optuna_names_only_in_the_boundary_module():
    uses = []
    for module, path in ARCH.modules().items():
        if module != BOUNDARY:
            uses += _private_uses(path, module)
    assert not uses, "private names outside fcnn_opt/store/optuna_internals.py:\n" + "\n".join(
        f"{where} {name}" for where, name in uses)


def test_the_check_would_catch_a_private_name(tmp_path):
    """The checker itself: each kind of private use in a module is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from optuna.storages._rdb import models\nimport optuna._imports\n"
                   "from optuna.pruners import _percentile\n"
                   "def f(study):\n    return study._storage, getattr(study, '_study_id')\n")
    assert [name for _, name in _private_uses(bad, "bad")] == ["_rdb", "_imports", "_percentile",
                                                               "_storage", "_study_id"]


def test_the_boundary_lists_every_private_name_it_uses():
    """Each private name the boundary touches is named in its docstring (with its reason)."""
    path = ROOT / "fcnn_opt" / "store" / "optuna_internals.py"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    uses = _private_uses(path, BOUNDARY)
    assert len(uses) > 20  # the boundary really is where they are
    missing = sorted({name for _, name in uses if name not in doc})
    assert not missing, missing


@pytest.mark.parametrize("name", ["make_dataset", "list_datasets", "TrainConfig", "train", "TrainResult",
                                  "Objective", "load_spec", "run_study", "run_worker", "get_backend"])
def test_public_names_stay(name):
    import fcnn_opt

    assert callable(getattr(fcnn_opt, name))


def test_plots_stay_public():
    from fcnn_opt import plots

    for name in ("plot_points", "plot_response", "plot_loss_histories", "plot_hp_surface",
                 "plot_lib_comparison", "optuna_figure", "build_report", "PlotError"):
        assert getattr(plots, name) is not None
    assert set(plots.__all__) >= {"plot_points", "build_report"}
