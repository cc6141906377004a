"""Fitted surrogates (fcnn_opt.show.figures._surrogate): the numbers behind the partial-dependence,
fitted-surface and importance figures on studies whose answer is known, the trust rule's
fallback, and the report's sections and ``--surrogate`` flag."""

from __future__ import annotations

import math
import sys

import numpy as np
import optuna
import pytest
from conftest import run_cli
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import create_trial

from fcnn_opt.plots import (
    PlotError,
    build_report,
    importance_uncertainty_data,
    plot_importance_uncertainty,
    plot_partial_dependence,
    plot_surrogate_surface,
    surrogate_data,
)

SURROGATE_KEYS = ["surrogate_pd", "surrogate_surface", "importance_uncertainty"]
KNOWN = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "units": IntDistribution(2, 64)}


def known(lr: float, units: int) -> float:
    """Best at lr = 10^-2.5 whatever the units; fewer units slightly better."""
    return (math.log10(lr) + 2.5) ** 2 + 0.1 * units / 64


def study_of(rows, distributions, direction="minimize", name="synthetic") -> optuna.Study:
    """An in-memory study with one complete trial per ``(params, value)``."""
    study = optuna.create_study(study_name=name, direction=direction)
    for params, value in rows:
        study.add_trial(create_trial(params=params, value=value,
                                     distributions={k: distributions[k] for k in params}))
    return study


def known_study(n: int, seed: int = 0) -> optuna.Study:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        params = {"lr": float(10 ** rng.uniform(-4, -1)), "units": int(rng.integers(2, 65))}
        rows.append((params, known(**params)))
    return study_of(rows, KNOWN, name="known")


def fitted_traces(fig) -> list[str]:
    return [t.type for t in fig.data if t.type in ("contour", "heatmap")]


@pytest.fixture(scope="module")
def known60():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return known_study(60)


@pytest.fixture(scope="module")
def known60_data(known60):
    return surrogate_data(known60, kind="gp")


def test_gp_recovers_a_known_function(known60_data, tmp_path):
    data = known60_data
    assert data.kind == "gp" and data.trusted
    assert data.quality.r2 > 0.9 and data.quality.scheme == "5-fold" and data.quality.n == 60
    assert list(data.importances) == ["lr", "units"]  # permutation importance, most important first
    lr = data.dependence["lr"]
    best_lr = lr.values[int(np.argmin(lr.mean))]
    assert 10 ** -2.5 / 2 < best_lr < 10 ** -2.5 * 2
    units = data.dependence["units"]
    assert np.all(np.diff(units.mean) > 0)  # +0.1 * units / 64: increasing
    assert units.mean[-1] - units.mean[0] == pytest.approx(0.1 * 62 / 64, abs=0.05)
    assert np.all(lr.band >= 0) and lr.band.max() < 0.1  # a confident fit of a noiseless function
    pair = data.pairs[("lr", "units")]  # x: lr (columns), y: units (rows)
    assert pair.mean.shape == (len(pair.y_values), len(pair.x_values)) == (30, 30)
    row, col = np.unravel_index(np.argmin(pair.mean), pair.mean.shape)
    assert 10 ** -2.5 / 2 < pair.x_values[col] < 10 ** -2.5 * 2 and pair.y_values[row] < 10
    assert data.surface.std is not None and data.surface_axes == ("lr", "units")


def test_known_function_figures(known60, tmp_path):
    fig = plot_partial_dependence(known60, kind="gp", save=tmp_path / "pd.png")
    assert fitted_traces(fig) == ["contour"]
    assert "Gaussian-process surrogate" in fig.layout.title.text and "CV R² = 1.00" in fig.layout.title.text
    mpl = plot_surrogate_surface(known60, kind="gp", backend="matplotlib", save=tmp_path / "surface.png")
    assert len(mpl.axes) == 4  # mean, std and their colour bars
    assert "lower is better" in " ".join(ax.get_xlabel() for ax in mpl.axes)
    surface = plot_surrogate_surface(known60, x="units", y="lr", kind="gp")
    assert fitted_traces(surface) == ["contour", "contour"]
    assert (tmp_path / "pd.png").stat().st_size > 20_000 and (tmp_path / "surface.png").stat().st_size > 20_000


def test_importance_error_bars(known60, tmp_path):
    data = importance_uncertainty_data(known60, repeats=6)
    assert data.names == ["lr", "units"] and data.samples.shape == (6, 2)
    assert sum(data.mean) == pytest.approx(1.0, abs=1e-6)
    assert data.mean[0] > 0.8 and all(s >= 0 for s in data.std)
    assert "6 bootstrap resamples of the 60 complete trials" in data.title
    fig = plot_importance_uncertainty(known60, repeats=3, save=tmp_path / "importance.png")
    assert list(fig.data[0].error_x.array) and (tmp_path / "importance.png").exists()


def test_pure_noise_is_not_trusted_and_draws_no_fit(tmp_path):
    rng = np.random.default_rng(1)
    rows = [({"lr": float(10 ** rng.uniform(-4, -1)), "units": int(rng.integers(2, 65))}, float(rng.normal()))
            for _ in range(40)]
    study = study_of(rows, KNOWN, name="noise")
    data = surrogate_data(study)
    assert not data.trusted and data.quality.r2 < 0.3
    assert data.dependence == {} and data.pairs == {} and data.surface is None and data.importances is None
    message = f"surrogate not trusted: CV R² = {data.quality.r2:.2f} on 40 trials (needs ≥ 0.3 and ≥ 8 trials)"
    assert data.quality.message == message
    fig = plot_partial_dependence(study, save=tmp_path / "pd.png")
    assert message in fig.layout.title.text and fitted_traces(fig) == []
    surface = plot_surrogate_surface(study, backend="matplotlib")
    assert message in surface.get_suptitle().replace("\n", " ")
    panel = surface.axes[0]  # the other is its colour bar
    assert len(surface.axes) == 2 and panel.get_xlabel() == data.surface_axes[0]
    assert not any(type(c).__name__ in ("QuadContourSet", "QuadMesh") for c in panel.get_children())


def test_six_trial_grid_falls_back_with_the_message(tmp_path):
    grid = {"units": CategoricalDistribution([2, 4, 8]), "activation": CategoricalDistribution(["relu", "tanh"])}
    rows = [({"units": u, "activation": a}, 1 / u + 0.1 * (a == "tanh")) for u in (2, 4, 8) for a in ("relu", "tanh")]
    study = study_of(rows, grid, name="grid6")
    data = surrogate_data(study)
    assert not data.trusted and data.quality.scheme == "leave-one-out"
    assert data.quality.message.startswith("surrogate not trusted: CV R² = ")
    assert data.quality.message.endswith(" on 6 trials (needs ≥ 0.3 and ≥ 8 trials)")
    fig = plot_partial_dependence(study, save=[tmp_path / "pd.png", tmp_path / "pd.html"])
    assert fitted_traces(fig) == [] and "on 6 trials" in fig.layout.title.text
    assert fitted_traces(plot_surrogate_surface(study, save=tmp_path / "surface.png")) == []
    assert (tmp_path / "pd.png").exists() and (tmp_path / "surface.png").exists()


def test_categorical_effect_is_recovered():
    rng = np.random.default_rng(2)
    dists = {"activation": CategoricalDistribution(["relu", "tanh"]), "dropout": FloatDistribution(0.0, 0.5)}
    rows = []
    for _ in range(30):
        params = {"activation": str(rng.choice(["relu", "tanh"])), "dropout": float(rng.uniform(0, 0.5))}
        rows.append((params, float(params["activation"] == "tanh") + float(rng.normal(0, 0.05))))
    data = surrogate_data(study_of(rows, dists), kind="gp")
    assert data.trusted
    pd = data.dependence["activation"]
    assert pd.values == ["relu", "tanh"]
    assert pd.mean[1] - pd.mean[0] == pytest.approx(1.0, abs=0.2)
    spec = data.spec("activation")
    assert not spec.numeric and spec.width == 2  # one-hot
    assert list(data.importances)[0] == "activation"


def test_forest_past_100_trials_is_trusted():
    data = surrogate_data(known_study(150, seed=1), pairs=False)
    assert data.kind == "forest" and data.trusted and data.quality.r2 > 0.9
    lr = data.dependence["lr"]
    assert 10 ** -2.5 / 2 < lr.values[int(np.argmin(lr.mean))] < 10 ** -2.5 * 2
    assert np.all(lr.band >= 0) and lr.band.max() > 0  # the spread over trees
    assert data.pairs == {} and data.surface is not None


def test_encoding_and_conditional_parameters():
    dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "n_layers": IntDistribution(1, 3),
             "units_l2": IntDistribution(2, 32), "units_l3": IntDistribution(2, 32)}
    rows = []
    for i in range(12):
        params = {"lr": 10 ** (-4 + 3 * i / 11), "n_layers": 1 + i % 3}
        if params["n_layers"] >= 2:
            params["units_l2"] = 2 + i  # in 8 of 12 trials: kept, absent filled with the low end
        if params["n_layers"] == 3 and i < 6:
            params["units_l3"] = 2 + i  # in 2 of 12 trials: left out
        rows.append((params, float(i)))
    data = surrogate_data(study_of(rows, dists))
    assert [s.name for s in data.specs] == ["lr", "n_layers", "units_l2"] and data.dropped == ["units_l3"]
    lr = data.spec("lr")
    assert lr.log and lr.unit(10 ** -2.5) == pytest.approx(0.5) and lr.raw(0.5) == pytest.approx(10 ** -2.5)
    assert data.spec("n_layers").integer and data.spec("n_layers").grid()[1] == [1, 2, 3]
    assert any("units_l3" in note for note in data.notes)


def test_bad_requests_raise_plot_errors(known60, monkeypatch):
    with pytest.raises(PlotError, match="kind must be one of"):
        surrogate_data(known60, kind="svm")
    with pytest.raises(PlotError, match="is not a searched hyperparameter"):
        plot_surrogate_surface(known60, x="epochs")
    with pytest.raises(PlotError, match="two different"):
        plot_surrogate_surface(known60, x="lr", y="lr")
    one = study_of([({"lr": v}, v) for v in (1e-3, 1e-2, 1e-1)], KNOWN)
    with pytest.raises(PlotError, match="needs two searched hyperparameters"):
        plot_surrogate_surface(one)
    with pytest.raises(PlotError, match="surrogate must be one of"):
        build_report(known60, "unused", surrogate="svm")
    monkeypatch.setitem(sys.modules, "sklearn", None)  # scikit-learn not installed
    with pytest.raises(PlotError, match=r"needs scikit-learn.*pip install"):
        surrogate_data(known60)


def test_report_adds_the_three_sections(small_study, tmp_path):
    _, study = small_study
    report = build_report(study, tmp_path, surrogate="auto")
    names = [p.name.split("_", 1)[1][:-4] for p in report.pngs]
    assert names[-3:] == SURROGATE_KEYS and not report.skipped
    page = report.html.read_text()
    assert all(f'<section id="{key}">' in page for key in SURROGATE_KEYS)
    assert "pruned left out" in page


def test_cli_report_draws_the_surrogate_by_default_and_none_skips_it(small_study, tmp_path):
    url, _ = small_study
    done = run_cli("report", "--study-name", "small", "--storage", url, "--out", tmp_path / "default", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stdout
    for key in SURROGATE_KEYS:
        assert len(list((tmp_path / "default").glob(f"*_{key}.png"))) == 1, key
    page = (tmp_path / "default" / "report.html").read_text()
    assert all(f'<section id="{key}">' in page for key in SURROGATE_KEYS)
    skipped = run_cli("report", "--study-name", "small", "--storage", url, "--surrogate", "none", "--no-png",
                      "--out", tmp_path / "none", cwd=tmp_path)  # the page alone says what was drawn
    assert skipped.returncode == 0, skipped.stderr
    other = (tmp_path / "none" / "report.html").read_text()
    assert not [key for key in SURROGATE_KEYS if f'<section id="{key}">' in other]
    assert other.count("<section id=") == page.count("<section id=") - 3


def test_the_header_names_the_slow_figures():
    from fcnn_opt.show.report import cost_fact

    assert cost_fact({"Contour": 0.3, "Slice": 0.2}) == {}
    line = cost_fact({"Contour": 0.3, "Partial dependence": 4.0, "Importances": 2.5})["computed in"]
    assert line == "6.8 s; the slowest figures: Partial dependence 4.0 s; Importances 2.5 s"


@pytest.mark.parametrize("dataset, params", [
    ({"name": "polynom", "n_points": 300}, {"epochs": 10, "lr": {"low": 1e-3, "high": 0.1, "log": True},
                                            "units": [2, 8, 16]}),
    ({"name": "circles", "n_points": 300}, {"epochs": 6, "lib": ["numpy", "sklearn"], "units": [2, 8]}),
], ids=["regression", "lib_varies"])
def test_real_studies_of_every_kind_give_the_figures(tmp_path, dataset, params):
    """A regression study and one where the library varies (a categorical with a real effect
    or none): the surrogate is fitted on every complete trial, says how good it is, and every
    figure is drawn (with a fit, or with the trials and the reason)."""
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = parse_spec({"study": {"name": "s", "sampler": "random", "pruner": "none", "n_trials": 12, "seed": 1},
                       "dataset": dataset, "params": params})
    run_study(spec, storage=url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="s", storage=url)
    data = surrogate_data(study)
    assert data.quality.n == sum(t.state.name == "COMPLETE" for t in study.trials) == 12
    assert math.isfinite(data.quality.rmse) and data.trusted == (data.quality.r2 >= 0.3)
    assert set(data.params) == {name for t in study.trials for name in t.params}
    if data.trusted:
        assert data.dependence and all(np.isfinite(d.mean).all() for d in data.dependence.values())
    plot_partial_dependence(study, save=tmp_path / "pd.png")
    plot_importance_uncertainty(study, save=tmp_path / "imp.png")
    assert (tmp_path / "pd.png").stat().st_size > 5000 and (tmp_path / "imp.png").stat().st_size > 5000
