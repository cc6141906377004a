"""The package's import graph, by layer: read from the source, drawn as docs/images/architecture.png.

    python docs/make_architecture.py

Every ``import`` of an ``fcnn_opt`` module counts, at the top of a file or inside a function
(a deferred import is still a dependency). ``tests/test_architecture.py`` checks the same
graph: no cycles, and no layer importing one above it.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fcnn_opt"

# Layers from the bottom up; a module may import its own layer and the layers below it,
# never a layer above. training and store share the bottom rank but may not import each other.
LAYERS = {
    "training": (0, "what one trial trains: datasets, config, training loop, backends, population"),
    "store": (0, "where studies live: storage URLs, the Optuna boundary, the mirror's storage"),
    "show": (1, "what a study shows: figures, report, per-trial pictures"),
    "search": (2, "how a study runs: space, objective, runner, trial source, mirror, ledger"),
    "cli": (3, "the thin command line"),
    "api": (4, "the public names: fcnn_opt, fcnn_opt.plots, python -m fcnn_opt"),
}
API_MODULES = ("fcnn_opt", "fcnn_opt.plots", "fcnn_opt.__main__")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in API_MODULES:
        return "api"
    return module.split(".")[1]


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """module -> the fcnn_opt modules it imports (``from pkg import submodule`` resolved)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == "fcnn_opt")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                    and node.module.split(".")[0] == "fcnn_opt":
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in known else node.module)
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def layer_edges(graph: dict[str, set[str]]) -> Counter:
    """(from layer, to layer) -> how many module imports cross between them."""
    edges: Counter = Counter()
    for source, targets in graph.items():
        for target in targets:
            a, b = layer_of(source), layer_of(target)
            if a != b and target != "fcnn_opt":
                edges[(a, b)] += 1
    return edges


def _rows(names: list[str], width: int) -> str:
    """Module names in lines of at most ``width`` characters, so that they stay in their box."""
    lines: list[str] = []
    for name in names:
        if lines and len(lines[-1]) + 2 + len(name) <= width:
            lines[-1] += "  " + name
        else:
            lines.append(name)
    return "\n".join(lines)


def _shown_names(layer: str, names: list[str]) -> list[str]:
    """A layer's modules as drawn: a subpackage once (``backends/``), not each of its files."""
    if layer == "api":
        return sorted(names)
    shown = set()
    for name in names:
        parts = name.split(".")[2:]
        if not parts:
            continue
        shown.add(parts[0] + "/" if len(parts) > 1 or (PACKAGE / layer / parts[0]).is_dir() else parts[0])
    return sorted(shown)


def draw(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    graph = import_graph()
    members: dict[str, list[str]] = {layer: [] for layer in LAYERS}
    for name in graph:
        members[layer_of(name)].append(name)
    # (centre x, centre y, width, height) of each layer's box
    boxes = {"training": (-0.62, 0.0, 1.1, 0.62), "store": (0.62, 0.0, 1.1, 0.62),
             "show": (0.0, 1.05, 1.6, 0.62), "search": (0.0, 2.1, 1.45, 0.9),
             "cli": (0.0, 3.1, 1.3, 0.55), "api": (0.0, 4.0, 1.3, 0.5)}
    lanes = {"search": 0.95, "cli": 1.1, "api": 1.25}  # |x| where a skipping arrow goes down
    colors = {"training": "#dbe9f6", "store": "#fde2cf", "show": "#e2f0d9", "search": "#ece2f4",
              "cli": "#f2f2f2", "api": "#fff5cc"}
    fig, ax = plt.subplots(figsize=(11, 10))
    for layer, (x, y, w, h) in boxes.items():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                    facecolor=colors[layer], edgecolor="#555555", linewidth=1.2, zorder=2))
        title = f"fcnn_opt.{layer}" if layer != "api" else "public API"
        ax.text(x, y + h / 2 - 0.07, title, ha="center", va="top", fontsize=12, fontweight="bold", zorder=3)
        ax.text(x, y + h / 2 - 0.19, LAYERS[layer][1], ha="center", va="top", fontsize=7.5,
                style="italic", zorder=3)
        ax.text(x, y - 0.12, _rows(_shown_names(layer, members[layer]), width=int(w * 38)),
                ha="center", va="center", fontsize=8.5, family="monospace", zorder=3, linespacing=1.4)
    # Arrows: straight down between neighbouring layers; a layer skipped is gone round on the
    # side, out of the source box horizontally, then down a lane of its own into the target.
    for (a, b), count in sorted(layer_edges(graph).items()):
        xa, ya, wa, ha = boxes[a]
        xb, yb, wb, hb = boxes[b]
        if ya == yb:
            continue
        side = -1 if xb < 0 else 1
        neighbours = LAYERS[a][0] - LAYERS[b][0] == 1 and b != "show" or (a, b) == ("search", "show")
        if neighbours:
            x = xb + (0.25 * side if b in ("training", "store") and a != "show" else 0)
            if a == "show":
                x = xa + side * 0.3
            start, end, style = (x, ya - ha / 2), (x if a != "show" else xb, yb + hb / 2), "arc3"
            label = ((start[0] + end[0]) / 2 + 0.04, (start[1] + end[1]) / 2)
        else:
            lane = side * (lanes[a] if b in ("training", "store") else wb / 2 - 0.05 - 0.1 * (a == "api"))
            start, end = (xa + side * wa / 2, ya - 0.12), (lane, yb + hb / 2)
            style = "angle,angleA=0,angleB=90,rad=0"
            label = (lane + 0.04 * side, (start[1] + end[1]) / 2)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#333333",
                                     linewidth=0.8 + 0.15 * min(count, 12), connectionstyle=style, zorder=1))
        ax.text(*label, str(count), fontsize=8, color="#333333", zorder=4, ha="center",
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-0.45, 4.35)
    ax.axis("off")
    ax.set_title("fcnn_opt's layers, from its import graph: arrows point from importer to imported\n"
                 "(number: module imports across). training and store never import each other; "
                 "nothing imports upwards", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    out = ROOT / "docs" / "images" / "architecture.png"
    draw(out)
    print(f"wrote {out}")
