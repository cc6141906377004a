"""What every figure shares: trial selection, colours, deferred imports, saving.

Figures are built in two steps: a small dataclass holds the numbers (computed once from a
study, a trial or a :class:`~fcnn_opt.training.loop.TrainResult`), then a plotly function and a
matplotlib function only draw it. matplotlib figures are made with
``matplotlib.figure.Figure`` directly (never pyplot), so they render with Agg anywhere,
need no display and leave a notebook's backend alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# matplotlib's tab10, also used for plotly, so classes and libraries look the same in both.
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
MPL_STYLES = ["-", ":", "--", "-."]
PLOTLY_DASHES = ["solid", "dot", "dash", "dashdot"]
DPI = 100
BACKENDS = ("plotly", "matplotlib")


class PlotError(ValueError):
    """A figure that cannot be drawn from what was given; the message says why."""


def require_plotly():
    """``plotly.graph_objects``, or an ImportError that says how to install plotly."""
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - plotly is a core dependency
        raise ImportError(f"Interactive figures need plotly ({exc}). Install it with `pip install plotly`.") from None
    return go


def new_mpl_figure(width: float, height: float, layout: str | None = "constrained"):
    """A matplotlib Figure (constrained layout by default), independent of pyplot."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError(f"PNG figures need matplotlib ({exc}). Install it with `pip install matplotlib`.") from None
    return Figure(figsize=(width, height), layout=layout)


def safe_name(name: str, default: str = "study") -> str:
    """``name`` reduced to ``[A-Za-z0-9._-]``, never ``.``/``..`` nor a hidden file: safe as one
    path component.

        >>> safe_name("../../etc/passwd")
        '__.._etc_passwd'
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))[:100]
    cleaned = re.sub(r"^\.+", "_", cleaned)
    return cleaned or default


def trials_of(study: optuna.Study, states: Sequence[str] = ("COMPLETE",)) -> list[optuna.trial.FrozenTrial]:
    """The study's trials in the given states, by trial number."""
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in states]


def metric_name(study: optuna.Study) -> str:
    """The name of the study's metric (its ``metric`` attribute), else "objective value"."""
    return study.user_attrs.get("metric", "objective value")


def direction_of(study: optuna.Study) -> str:
    """``"minimize"`` or ``"maximize"``: a one-objective study's direction."""
    return study.direction.name.lower()


def check_axes(x: str | None, y: str | None, allowed: Sequence[str], noun: str, label: str) -> None:
    """Refuse an ``x``/``y`` hyperparameter outside ``allowed`` (``noun``: what it should be,
    ``label``: how the allowed ones are listed), or the same one twice."""
    for name, role in ((x, "x"), (y, "y")):
        if name is not None and name not in allowed:
            raise PlotError(f"{role}={name!r} is not {noun} of this study. {label}: {', '.join(allowed) or 'none'}.")
    if x is not None and x == y:
        raise PlotError(f"x and y must be two different hyperparameters; both are {x!r}.")


def is_multi(study: optuna.Study) -> bool:
    """Whether ``study`` has several objectives (a Pareto set, no single best trial)."""
    return len(study.directions) > 1


def objective_names(study: optuna.Study) -> list[str]:
    """A multi-objective study's objective names, as its definition lists them."""
    names = ((study.user_attrs.get("spec") or {}).get("study") or {}).get("objectives")
    return list(names) if names else [f"objective {i}" for i in range(len(study.directions))]


def value_text(trial, study: optuna.Study | None = None) -> str:
    """``", value 0.0623"``; a multi-objective trial's values, named after the objectives of
    ``study`` when given; ``""`` when it has none."""
    values = trial.values
    if not values:
        return ""
    if len(values) == 1:
        return f", value {values[0]:.4g}"
    names = objective_names(study) if study is not None else [f"objective {i}" for i in range(len(values))]
    return ", " + ", ".join(f"{name} {v:.4g}" for name, v in zip(names, values, strict=True))


def fmt(value: Any) -> str:
    """A short label for a parameter value."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def searched_params(trials) -> list[str]:
    """Parameter names whose value differs between the trials, in suggestion order."""
    names: dict[str, set] = {}
    for t in trials:
        for key, value in t.params.items():
            names.setdefault(key, set()).add(value if not isinstance(value, list) else tuple(value))
    return [k for k, values in names.items() if len(values) > 1]


def log_scaled(trials, name: str) -> bool:
    """True when ``name`` was sampled on a log scale."""
    for t in trials:
        dist = t.distributions.get(name)
        if dist is not None:
            return bool(getattr(dist, "log", False))
    return False


def render(data, draw_plotly: Callable, draw_mpl: Callable, backend: str, save) -> Any:
    """Draw ``data`` with the chosen backend, save to each path in ``save``, return the figure.

    A ``.png`` path is drawn with matplotlib, a ``.html`` path with plotly (offline: plotly.js
    embedded in the file).
    """
    if backend not in BACKENDS:
        raise PlotError(f"backend must be one of {{{', '.join(BACKENDS)}}}. Received: {backend!r}")
    figures: dict[str, Any] = {}

    def figure(kind: str):
        if kind not in figures:
            figures[kind] = draw_plotly(data) if kind == "plotly" else draw_mpl(data)
        return figures[kind]

    for path in [save] if isinstance(save, (str, Path)) else list(save or []):
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".png":
            save_png(figure("matplotlib"), path)
        elif suffix in (".html", ".htm"):
            save_html(figure("plotly"), path)
        else:
            raise PlotError(f"Cannot save a figure as {path.name!r}: use a .png or .html path.")
    return figure(backend)


def save_png(fig, path: Path, dpi: int = DPI) -> Path:
    """Save a matplotlib figure as a PNG with a 256-colour palette (a third of the bytes;
    figures are flat colours, so nothing visible is lost)."""
    import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        path.write_bytes(buffer.getvalue())
        return path
    with Image.open(buffer) as image:
        image = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT,
                                              dither=Image.Dither.NONE)
        image.save(path, format="PNG", optimize=True)
    return path


PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def save_html(fig, path: Path) -> Path:
    """One offline HTML file: plotly.js embedded, nothing loaded from the network."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs=True, include_mathjax=False, config=PLOTLY_CONFIG)
    return path
