"""The package's shape: layers that import only downwards, no import cycles, Optuna's
private names in one module only (fcnn_opt.store.optuna_internals), the project's own
modules imported at the top of a module (deferred only where an allow-list says why), a
docstring on every public function and class, and docs/architecture.md naming every module."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnn_opt"
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


# --- where modules are imported -------------------------------------------------------------

# The function-level imports of fcnn_opt's own modules that stay, each with its reason. Each
# of these modules imports a library of HEAVY at its top (PyTorch, Numba), which `import
# fcnn_opt`, the command line and a NumPy study must never load (see
# test_light_modules_load_no_heavy_library).
# Every other import of a project module sits at the top of its module, where a reader sees
# what the module needs. The public lazy faces (fcnn_opt/__init__.py, fcnn_opt/plots.py,
# show/figures/__init__.py, training/backends/__init__.py) defer through importlib, not here.
DEFERRED_IMPORTS = {
    ("fcnn_opt.training.repeats", "fcnn_opt.training.population"):
        "PyTorch: only seed repeats trained together in the population engine need it",
    ("fcnn_opt.training.folds", "fcnn_opt.training.population"):
        "PyTorch: only folds trained together in the population engine need it",
    ("fcnn_opt.training.folds", "fcnn_opt.training.backends._torch"):
        "PyTorch: the thread setting of folds trained together in the population engine",
    ("fcnn_opt.search.batches", "fcnn_opt.training.population"):
        "PyTorch: only a population batch (--batch-trials K) needs it",
    ("fcnn_opt.training.backends._numpy", "fcnn_opt.training.backends._compiled"):
        "Numba: the compiled epoch loop, only where Numba is installed and not switched off",
    ("fcnn_opt.store.optuna_internals", "fcnn_opt.store._tpe_compiled"):
        "Numba: TPE's compiled tail, only once the NumPy backend has loaded Numba",
}
# Libraries that only some features need, and Optuna and SQLAlchemy, which only opening a
# study needs (deferred so that `import fcnn_opt` and `--help` stay light): no light module
# imports one at its top. Dask only runs a study on a cluster (study --cluster).
HEAVY = ("torch", "tensorflow", "keras", "sklearn", "scipy", "numba", "plotly", "matplotlib", "onnx",
         "onnxruntime", "optuna_dashboard", "pandas", "pyarrow", "optuna", "sqlalchemy", "dask", "distributed")


def _project_targets(node: ast.Import | ast.ImportFrom, known) -> set[str]:
    """The fcnn_opt modules an import statement imports (``from pkg import submodule`` resolved)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == "fcnn_opt"}
    if node.level or not node.module or node.module.split(".")[0] != "fcnn_opt":
        return {f".{node.module or ''}"} if node.level else set()
    return {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
            for a in node.names}


def _imports(path: Path) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """A module's import statements: ``(at import time, inside functions)``; those under
    ``if TYPE_CHECKING:`` are in neither (they never run)."""
    top, deferred = [], []

    def walk(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                (deferred if in_function else top).append(child)
            walk(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    walk(ast.parse(path.read_text()), False)
    return top, deferred


def deferred_project_imports(modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """``(module, imported project module, line)`` for each import of a project module
    inside a function."""
    found = []
    for name, path in modules.items():
        for node in _imports(path)[1]:
            found += [(name, target, node.lineno) for target in sorted(_project_targets(node, modules))]
    return found


def test_project_modules_are_imported_at_the_top():
    unlisted = [f"{path}:{line} imports {target}"
                for path, target, line in deferred_project_imports(ARCH.modules())
                if (path, target) not in DEFERRED_IMPORTS]
    assert not unlisted, ("import these at the top of the module, or add the pair to DEFERRED_IMPORTS "
                          "with the reason:\n" + "\n".join(unlisted))


def test_every_allowed_deferred_import_is_used_and_heavy():
    modules = ARCH.modules()
    used = {(path, target) for path, target, _ in deferred_project_imports(modules)}
    assert not set(DEFERRED_IMPORTS) - used, f"stale entries: {sorted(set(DEFERRED_IMPORTS) - used)}"
    for _, target in DEFERRED_IMPORTS:
        top = _imports(modules[target])[0]
        libraries = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        libraries |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert libraries & set(HEAVY), f"{target} imports no heavy library at its top: import it at the top"


def test_the_check_would_catch_a_deferred_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from fcnn_opt.search import space\n"
                   "def f():\n    import json\n    from fcnn_opt.search.space import load_spec\n"
                   "    from fcnn_opt.training import tables\n    return load_spec, tables, json\n")
    found = [f for f in deferred_project_imports({**ARCH.modules(), "bad": bad}) if f[0] == "bad"]
    assert found == [("bad", "fcnn_opt.search.space", 6), ("bad", "fcnn_opt.training.tables", 7)]


def _heavy_modules(modules: dict[str, Path]) -> set[str]:
    """The modules that load a heavy library when imported: directly, or through the project
    modules they import at their top."""
    direct, edges = set(), {}
    for name, path in modules.items():
        top = _imports(path)[0]
        roots = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module}
        if roots & set(HEAVY):
            direct.add(name)
        edges[name] = set().union(*(_project_targets(n, modules) for n in top)) & set(modules)
    heavy, changed = set(direct), True
    while changed:
        changed = False
        for name, targets in edges.items():
            if name not in heavy and targets & heavy:
                heavy.add(name)
                changed = True
    return heavy


def test_light_modules_load_no_heavy_library():
    """Importing every module that does not need PyTorch, Numba & co. (all but a handful),
    the command line's parser included, loads none of them: deferring them is what keeps
    `import fcnn_opt`, `--help` and a NumPy study light."""
    modules = ARCH.modules()
    heavy = _heavy_modules(modules)
    assert heavy == {"fcnn_opt.training.population", "fcnn_opt.training.backends._torch",
                     "fcnn_opt.training.backends._tf", "fcnn_opt.training.backends._keras",
                     "fcnn_opt.training.backends._sklearn", "fcnn_opt.training.backends._compiled",
                     "fcnn_opt.store._tpe_compiled"}, heavy
    light = sorted(set(modules) - heavy - {"fcnn_opt.__main__"})
    code = ("import importlib, sys\n"
            f"for name in {light!r}:\n    importlib.import_module(name)\n"
            "from fcnn_opt.cli import commands\ncommands.build_parser()\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_a_numpy_study_loads_no_other_framework(tmp_path):
    """A NumPy study runs without importing PyTorch, TensorFlow, Keras, scikit-learn, a
    plotting library or Dask (Numba and SciPy, which it uses, may load)."""
    code = ("import sys\nfrom fcnn_opt.search.runner import run_study\nfrom fcnn_opt.search.space import parse_spec\n"
            "spec = parse_spec({'study': {'name': 'light', 'n_trials': 3, 'seed': 0}, "
            "'dataset': {'name': 'circles', 'n_points': 200}, 'params': {'lib': 'numpy', 'epochs': 3, "
            "'lr': {'low': 1e-3, 'high': 1e-1, 'log': True}, 'units': [4, 8]}}, source='light')\n"
            "summary = run_study(spec, storage='sqlite:///light.db', progress=False, artifacts='none')\n"
            "assert summary.counts.complete == 3, summary.counts\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'plotly', 'matplotlib', 'dask', "
            "'distributed') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


# --- docstrings -----------------------------------------------------------------------------

def undocumented(path: Path, module: str) -> list[str]:
    """The public functions, classes and methods of a module (no leading underscore, on any
    name of their path, nested functions left out) that have no docstring."""
    missing = []

    def visit(body, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.If | ast.Try):  # definitions under if/try still define
                visit(node.body, prefix)
                visit(node.orelse, prefix)
                continue
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if node.name.startswith("_"):
                continue
            if ast.get_docstring(node) is None:
                missing.append(f"{prefix}{node.name}")
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(path.read_text()).body, f"{module}.")
    return missing


def test_every_public_function_and_class_has_a_docstring():
    missing = []
    for module, path in ARCH.modules().items():
        missing += undocumented(path, module)
    assert not missing, "public names without a docstring (say what it does and returns):\n" + "\n".join(missing)


def test_the_docstring_check_would_catch_one(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f():\n    def inner():\n        pass\n\ndef _private():\n    pass\n\n'
                   'class C:\n    """Documented."""\n    def method(self):\n        pass\n'
                   '    def _hidden(self):\n        pass\n\nclass _D:\n    def method(self):\n        pass\n')
    assert undocumented(bad, "bad") == ["bad.f", "bad.C.method"]


# --- docs/architecture.md -------------------------------------------------------------------

def _module_table() -> dict[str, str]:
    """The rows of docs/architecture.md's module table: path under fcnn_opt/ -> its job."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = re.fullmatch(r"\|\s*`([\w/]+\.py)`\s*\|(.*)\|", line.strip())
        if match:
            rows[match[1]] = match[2].strip()
    return rows


def test_the_architecture_doc_names_every_module_with_its_job():
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    table = _module_table()
    assert not sorted(files - set(table)), f"add to docs/architecture.md's table: {sorted(files - set(table))}"
    assert not sorted(set(table) - files), f"gone from fcnn_opt/: {sorted(set(table) - files)}"
    assert all(table.values()), [name for name, job in table.items() if not job]
