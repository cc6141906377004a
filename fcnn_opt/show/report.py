"""The study report: one self-contained HTML file (plotly.js embedded once, nothing loaded
from the network) and a PNG of every figure, all inside one folder.

    >>> from fcnn_opt.plots import build_report
    >>> report = build_report(study, "studies/reports/seed_grid")  # doctest: +SKIP
    >>> report.html
    PosixPath('studies/reports/seed_grid/report.html')

``python -m fcnn_opt report --study-name NAME`` calls this.
"""

from __future__ import annotations

import html
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fcnn_opt import __version__
from fcnn_opt.show.figures import (
    _fit,
    _hp_surface,
    _importance,
    _learning,
    _libs,
    _loss,
    _optuna,
    _partial_dependence,
    _progress,
    _response,
    _surrogate,
)
from fcnn_opt.show.figures._common import (
    PLOTLY_CONFIG,
    PlotError,
    direction_of,
    fmt,
    is_multi,
    metric_name,
    objective_names,
    safe_name,
    save_png,
    trials_of,
)
from fcnn_opt.store.artifact_files import load_snapshots

REPORT_FILE = "report.html"


@dataclass
class Report:
    """What :func:`build_report` wrote: the HTML file, the PNGs and the figures it skipped."""

    out_dir: Path
    html: Path
    pngs: list[Path] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # figure title -> reason
    seconds: dict[str, float] = field(default_factory=dict)  # figure title -> time to compute and draw it


@dataclass
class _Section:
    key: str
    title: str
    caption: str
    build: Callable[[], object]  # -> data for draw functions, or raises PlotError
    draw_plotly: Callable[[object], object]
    draw_png: Callable[[object, Path], None]


def default_out_dir(study_name: str) -> Path:
    """``studies/reports/<study name, sanitised>``."""
    return Path("studies") / "reports" / safe_name(study_name)


def _headless() -> None:
    """Agg for pyplot when nothing chose a backend yet (Optuna's matplotlib figures use pyplot)."""
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def _response_trials(study, requested: Sequence[int]) -> list[tuple[str, object]]:
    complete = [t for t in trials_of(study) if t.value is not None and math.isfinite(t.value)]
    ranked = sorted(complete, key=lambda t: t.value, reverse=direction_of(study) == "maximize")
    chosen: list[tuple[str, object]] = []
    if ranked:
        chosen.append(("best", ranked[0]))
        if len(ranked) > 1:
            chosen.append(("worst", ranked[-1]))
    return _with_requested(study, chosen, requested)


def _with_requested(study, chosen: list[tuple[str, object]], requested: Sequence[int]) -> list[tuple[str, object]]:
    """``chosen`` and, after them, the trials ``requested`` by number that are not already in it."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in requested:
        if number not in by_number:
            raise PlotError(f"Study {study.study_name!r} has no trial {number}. "
                            f"Trials: 0..{max(by_number) if by_number else -1}.")
        if all(t.number != number for _, t in chosen):
            chosen.append((f"trial {number}", by_number[number]))
    return chosen


def pareto_picks(study) -> list[tuple[str, object]]:
    """Three trials of the Pareto set, from the end best at the last objective (e.g. the
    smallest, roughest network) through the middle to the end best at the first (e.g. the
    most accurate): sorted by the first objective, worst first."""
    names = objective_names(study)
    front = sorted(study.best_trials, key=lambda t: t.values[0],
                   reverse=study.directions[0].name == "MINIMIZE")
    if not front:
        return []
    picks = [(f"Pareto end best at {names[-1]}", front[0]),
             ("middle of the Pareto set", front[len(front) // 2]),
             (f"Pareto end best at {names[0]}", front[-1])]
    chosen, seen = [], set()
    for label, trial in picks:
        if trial.number not in seen:
            seen.add(trial.number)
            chosen.append((label, trial))
    return chosen


def _response_section(study, label: str, trial, artifact_dir, features=None) -> _Section:
    return _Section(
        "response_" + "".join(ch for ch in label.lower() if ch.isalnum()), f"Model response surface: {label} (trial {trial.number})",
        "The trained network's output over the input plane, training points on top, the ground "
        "truth beside it and the loss history (rebuilt from the stored weights).",
        build=lambda trial=trial: _response.response_data(trial, study=study, artifact_dir=artifact_dir,
                                                          features=features),
        draw_plotly=_response.draw_response_plotly,
        draw_png=lambda d, p: save_png(_response.draw_response_mpl(d), p))


def _fit_section(study, trial, artifact_dir) -> _Section:
    return _Section(
        "fit_best", f"How the best network fits held-out points (trial {trial.number})",
        "A confusion matrix (classification) or predicted against true values (regression), on the "
        "test split when the study has one, else on the validation split.",
        build=lambda: _fit.fit_data(trial, study=study, artifact_dir=artifact_dir),
        draw_plotly=_fit.draw_fit_plotly, draw_png=lambda d, p: save_png(_fit.draw_fit_mpl(d), p))


def _has_snapshots(study) -> bool:
    """Whether the study's best trial kept snapshots (``study --snapshots N``)."""
    ranked = _response_trials(study, ())
    try:
        return bool(ranked) and bool(load_snapshots(ranked[0][1]))
    except Exception:  # a run file that cannot be read: the response sections say why
        return False


def _learning_section(study, artifact_dir, features=None) -> _Section:
    return _Section(
        "learning", "The decision boundary as it learns (best and worst trial)",
        "Each network's output over the input plane after each snapshot epoch; the slider (or play) "
        "moves through the epochs, the line on the loss curves marks the epoch shown. The PNG shows "
        "five of them.",
        build=lambda: _learning.learning_data(study, artifact_dir=artifact_dir, features=features),
        draw_plotly=_learning.draw_learning_plotly,
        draw_png=lambda d, p: save_png(_learning.draw_learning_mpl(d), p))


def _loss_section(study, color_by, style_by, artifact_dir) -> _Section:
    return _Section(
        "loss_histories", "Loss histories (the seed article's figure)",
        "Every trial's training and validation loss per epoch; colour and line style show two "
        "hyperparameters, the legend only those that vary.",
        build=lambda: _loss.loss_histories_data(study, color_by, style_by, artifact_dir=artifact_dir),
        draw_plotly=_loss.draw_loss_plotly, draw_png=lambda d, p: save_png(_loss.draw_loss_mpl(d), p))


def _multi_sections(study, *, trials: Sequence[int], color_by, style_by, artifact_dir=None,
                    features=None) -> list[_Section]:
    """A multi-objective study: its Pareto front, three networks along it, the loss histories
    and the timeline (Optuna's one-value figures do not apply)."""
    sections = [_Section(
        "pareto_front", "Pareto front",
        "Every complete trial by its objective values; the Pareto set (no trial better at every "
        "objective) is highlighted.",
        build=lambda: _optuna.pareto_front(study), draw_plotly=lambda fig: fig,
        draw_png=lambda _fig, path: _optuna.pareto_front(study, save=path))]
    picks = _with_requested(study, pareto_picks(study), trials)
    sections += [_response_section(study, label, trial, artifact_dir, features) for label, trial in picks]
    sections.append(_loss_section(study, color_by, style_by, artifact_dir))
    timeline = next(info for info in _optuna.OPTUNA_FIGURES if info.key == "timeline")
    sections.append(_Section(
        timeline.key, timeline.title, timeline.caption,
        build=lambda: _optuna.optuna_figure(study, "timeline"), draw_plotly=lambda fig: fig,
        draw_png=lambda _fig, path: _optuna.optuna_figure(study, "timeline", save=path)))
    return sections


def _surrogate_sections(study, kind: str, x, y) -> list[_Section]:
    """A fitted surrogate's partial dependence, its surface with uncertainty, and fANOVA
    importances with error bars (one surrogate fit for the first two unless x or y is given)."""
    fitted: dict[str, object] = {}

    def matrix():
        if "data" not in fitted:
            fitted["data"] = _surrogate.surrogate_data(study, kind=kind)
        return fitted["data"]

    def surface():
        data = matrix() if x is None and y is None else _surrogate.surrogate_data(study, kind=kind, x=x, y=y,
                                                                                  pairs=False)
        _partial_dependence.surface_axes(data)  # PlotError (a skipped section) with one hyperparameter
        return data

    model = {"auto": "a Gaussian process or a random forest, whichever predicts held-out trials better",
             "gp": "a Gaussian process",
             "forest": "a random forest"}[kind]
    trust = (f"It is drawn only when it predicts trials it was not fitted on (cross-validated R² ≥ "
             f"{_surrogate.MIN_R2} on ≥ {_surrogate.MIN_TRIALS} complete trials); otherwise the trials "
             "alone, with the reason. Pruned trials are left out.")
    return [
        _Section("surrogate_pd", "Partial dependence of a fitted surrogate",
                 f"A surrogate model ({model}) of the final metric fitted to the complete trials: each hyperparameter's partial dependence on the diagonal (mean ± the "
                 "surrogate's std, the trials as dots), each pair below as a filled contour with the "
                 "trials and the best trial (star). " + trust,
                 build=matrix, draw_plotly=_partial_dependence.draw_pd_plotly,
                 draw_png=lambda d, p: save_png(_partial_dependence.draw_pd_mpl(d), p)),
        _Section("surrogate_surface", "Fitted response surface with uncertainty",
                 "The surrogate's mean over the two most important hyperparameters (the others averaged "
                 "out over the trials) beside its uncertainty, the trials on top. " + trust,
                 build=surface, draw_plotly=_partial_dependence.draw_surface_plotly,
                 draw_png=lambda d, p: save_png(_partial_dependence.draw_surface_mpl(d), p)),
        _Section("importance_uncertainty", "Hyperparameter importances with error bars",
                 "fANOVA importance of each hyperparameter on 10 bootstrap resamples of the complete "
                 "trials: bar the mean share, error bar ± 1 standard deviation.",
                 build=lambda: _importance.importance_uncertainty_data(study),
                 draw_plotly=_importance.draw_importance_plotly,
                 draw_png=lambda d, p: save_png(_importance.draw_importance_mpl(d), p)),
    ]


def _sections(study, *, trials: Sequence[int], color_by, style_by, x, y, artifact_dir=None,
              surrogate: str | None = None, features=None) -> list[_Section]:
    if is_multi(study):
        return _multi_sections(study, trials=trials, color_by=color_by, style_by=style_by,
                               artifact_dir=artifact_dir, features=features)
    sections = []
    for info in _optuna.OPTUNA_FIGURES:
        sections.append(_Section(
            info.key, info.title, info.caption,
            build=lambda key=info.key: _optuna.optuna_figure(study, key),
            draw_plotly=lambda fig: fig,
            draw_png=lambda _fig, path, key=info.key: _optuna.optuna_figure(study, key, save=path)))
    sections.append(_loss_section(study, color_by, style_by, artifact_dir))
    sections += [_response_section(study, label, trial, artifact_dir, features)
                 for label, trial in _response_trials(study, trials)]
    sections.append(_Section(
        "progress", "How the study spent its time",
        "The best value so far against wall time (when each complete trial ended), and the epochs each "
        "trial trained: pruned trials (red) stop early.",
        build=lambda: _progress.progress_data(study), draw_plotly=_progress.draw_progress_plotly,
        draw_png=lambda d, p: save_png(_progress.draw_progress_mpl(d), p)))
    best = next((trial for label, trial in _response_trials(study, ()) if label == "best"), None)
    if best is not None:
        sections.append(_fit_section(study, best, artifact_dir))
    if _has_snapshots(study):
        sections.append(_learning_section(study, artifact_dir, features))
    sections.append(_Section(
        "hp_surface", "Hyperparameter response surface",
        "The final metric over two hyperparameters, the others averaged out, and one marginal curve "
        "per hyperparameter (mean, ± 1 standard deviation, and each trial).",
        build=lambda: _hp_surface.hp_surface_data(study, x, y),
        draw_plotly=_hp_surface.draw_hp_plotly, draw_png=lambda d, p: save_png(_hp_surface.draw_hp_mpl(d), p)))
    if surrogate is not None:
        sections += _surrogate_sections(study, surrogate, x, y)
    sections.append(_Section(
        "lib_comparison", "Library comparison",
        "Validation curves of each training library side by side, and seconds per epoch.",
        build=lambda: _libs.lib_comparison_data(study, artifact_dir),
        draw_plotly=_libs.draw_libs_plotly, draw_png=lambda d, p: save_png(_libs.draw_libs_mpl(d), p)))
    return sections


def build_report(study, out_dir: str | Path | None = None, *, trials: Sequence[int] = (),
                 color_by: str | None = None, style_by: str | None = None, x: str | None = None,
                 y: str | None = None, png: bool = True, artifact_dir: str | Path | None = None,
                 facts: dict[str, str] | None = None, surrogate: str | None = None,
                 features: Sequence[str] | None = None) -> Report:
    """Write ``report.html`` and one PNG per figure into ``out_dir``.

    Args:
        study: an Optuna study run by fcnn_opt, with at least one complete trial.
        out_dir: the folder to write into (created); default ``studies/reports/<study name>``.
            Nothing is written outside it.
        trials: trial numbers whose response surface is drawn besides the best and worst.
        color_by, style_by: hyperparameters of the loss-history overlay.
        x, y: hyperparameters of the hyperparameter response surface (and of the fitted
            surface, with ``surrogate``).
            The header says what the report cost, naming each figure that took a second or more.
        png: also write the PNGs (matplotlib).
        artifact_dir: the study's artifact folder, where its trials' weights are (default: the
            folder they were written to).
        features: your own data's two features to draw the response surfaces over (default:
            the two that matter most to each network).
        facts: more lines for the report's header, ``{label: text}`` (the command line adds
            the best trial's test estimate, from :mod:`fcnn_opt.search.evaluation`).
        surrogate: ``"auto"``, ``"gp"`` or ``"forest"`` adds three sections for a
            single-objective study: a fitted surrogate's partial dependence, its surface with
            uncertainty and importances with error bars (needs scikit-learn); None: none.

    Raises:
        PlotError: no complete trial, or an unknown trial number, hyperparameter or surrogate.
    """
    if surrogate is not None and surrogate not in _surrogate.KINDS:
        raise PlotError(f"surrogate must be one of {{{', '.join(_surrogate.KINDS)}}} or None. "
                        f"Received: {surrogate!r}")
    if not trials_of(study):
        raise PlotError(f"Study {study.study_name!r} has no complete trial yet; nothing to report.")
    # Check the user's choices before writing or drawing anything.
    sections = _sections(study, trials=trials, color_by=color_by, style_by=style_by, x=x, y=y,
                         artifact_dir=artifact_dir, surrogate=surrogate, features=features)
    if color_by or style_by:
        _loss.loss_histories_data(study, color_by, style_by, artifact_dir=artifact_dir)
    if (x or y) and not is_multi(study):
        _hp_surface.hp_surface_data(study, x, y)
    if features:
        _response.trial_dataset(trials_of(study)[0], study, artifact_dir, features)
    _headless()
    out = Path(out_dir) if out_dir is not None else default_out_dir(study.study_name)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir=out, html=out / REPORT_FILE)
    parts = []
    for i, section in enumerate(sections, start=1):
        started = time.perf_counter()
        try:
            data = section.build()
        except PlotError as exc:
            if section.key != "lib_comparison":
                report.skipped[section.title] = str(exc)
                parts.append((section, _skipped_html(section, str(exc))))
            continue
        finally:
            report.seconds[section.title] = time.perf_counter() - started
        fig = section.draw_plotly(data)
        png_name = None
        if png:
            png_name = f"{i:02d}_{section.key}.png"
            try:
                section.draw_png(data, out / png_name)
                report.pngs.append(out / png_name)
            except Exception as exc:  # one PNG that fails (e.g. in Optuna) must not lose the report
                report.skipped[f"{section.title} (PNG)"] = f"{type(exc).__name__}: {exc}"
                png_name = None
        parts.append((section, _figure_html(section, fig, png_name)))
        report.seconds[section.title] = time.perf_counter() - started
    facts = {**(facts or {}), **cost_fact(report.seconds)}
    report.html.write_text(_page(study, parts, facts), encoding="utf-8")
    return report


SLOW_PART = 1.0  # seconds: a figure that took longer is named in the report's header


def cost_fact(seconds: dict[str, float]) -> dict[str, str]:
    """The header's line on what the report cost: the total, and each figure that took at least
    :data:`SLOW_PART` seconds, slowest first (nothing when no figure was slow)."""
    slow = sorted(((t, title) for title, t in seconds.items() if t >= SLOW_PART), reverse=True)
    if not slow:
        return {}
    parts = "; ".join(f"{title} {t:.1f} s" for t, title in slow)
    return {"computed in": f"{sum(seconds.values()):.1f} s; the slowest figures: {parts}"}


def _figure_html(section: _Section, fig, png_name: str | None) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, config=PLOTLY_CONFIG,
                      default_width="100%")
    link = f' <a class="png" href="{html.escape(png_name)}">PNG</a>' if png_name else ""
    return (f'<section id="{section.key}"><h2>{html.escape(section.title)}{link}</h2>'
            f'<p class="caption">{html.escape(section.caption)}</p>{div}</section>')


def _skipped_html(section: _Section, reason: str) -> str:
    return (f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>'
            f'<p class="skipped">Not drawn: {html.escape(reason)}</p></section>')


def _pareto_rows(study) -> str:
    rows = []
    for t in sorted(study.best_trials, key=lambda t: t.values):
        values = "".join(f"<td>{v:.5g}</td>" for v in t.values)
        params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
        rows.append(f"<tr><td>{t.number}</td>{values}<td>{html.escape(params)}</td>"
                    f"<td>{html.escape(str(t.user_attrs.get('description', '')))}</td></tr>")
    return "".join(rows)


def _summary_rows(study) -> str:
    complete = [t for t in trials_of(study) if t.value is not None]
    ranked = sorted(complete, key=lambda t: t.value, reverse=direction_of(study) == "maximize")[:10]
    rows = []
    for t in ranked:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())
        rows.append(f"<tr><td>{t.number}</td><td>{t.value:.5g}</td><td>{html.escape(params)}</td>"
                    f"<td>{html.escape(str(t.user_attrs.get('description', '')))}</td>"
                    f"<td>{t.user_attrs.get('seconds_per_epoch', '')}</td></tr>")
    return "".join(rows)


def _page(study, parts: list[tuple[_Section, str]], facts: dict[str, str]) -> str:
    from plotly.offline import get_plotlyjs

    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in states.items())
    attrs = study.user_attrs
    dataset = attrs.get("dataset", {})
    dataset_text = ", ".join(f"{k}={v}" for k, v in dataset.items()) if isinstance(dataset, dict) else str(dataset)
    name = html.escape(study.study_name)
    metric = html.escape(metric_name(study))
    if is_multi(study):
        names = objective_names(study)
        objective = ", ".join(f"{html.escape(n)} ({d.name.lower()})" for n, d in zip(names, study.directions,
                                                                                      strict=True))
        best_line = f"Pareto set of {len(study.best_trials)} trials (no single best)"
        table = ("<h2>Pareto set</h2><table><tr><th>trial</th>"
                 + "".join(f"<th>{html.escape(n)}</th>" for n in names)
                 + f"<th>parameters</th><th>description</th></tr>{_pareto_rows(study)}</table>")
    else:
        best = study.best_trial
        objective = f"{metric} ({direction_of(study)})"
        best_line = (f"trial {best.number}: {best.value:.5g}; "
                     f"{html.escape(str(best.user_attrs.get('description', best.params)))}")
        table = (f"<h2>Best trials</h2><table><tr><th>trial</th><th>{metric}</th><th>parameters</th>"
                 f"<th>description</th><th>s/epoch</th></tr>{_summary_rows(study)}</table>")
    extra = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>" for label, text in facts.items())
    toc = "".join(f'<li><a href="#{s.key}">{html.escape(s.title)}</a></li>' for s, _ in parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fcnn_opt report: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; }}
.caption {{ color: #555; }} .skipped {{ color: #a33; }} .png {{ font-size: 0.6em; font-weight: normal; }}
dl {{ display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }} dt {{ font-weight: bold; }}
</style>
<script type="text/javascript">window.PlotlyConfig = {{MathJaxConfig: 'local'}};</script>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Study {name}</h1>
<dl>
<dt>trials</dt><dd>{html.escape(counts)}</dd>
<dt>objective</dt><dd>{objective}</dd>
<dt>best</dt><dd>{best_line}</dd>
{extra}
<dt>dataset</dt><dd>{html.escape(dataset_text or '-')}</dd>
<dt>sampler</dt><dd>{html.escape(str(attrs.get('sampler', '-')))}</dd>
<dt>made</dt><dd>{time.strftime('%Y-%m-%d %H:%M')} by fcnn_opt {__version__}</dd>
</dl>
{table}
<h2>Figures</h2><ol>{toc}</ol>
{''.join(body for _, body in parts)}
</body></html>
"""

