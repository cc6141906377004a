"""``python -m fcnn_opt report``: one offline HTML file and a PNG per figure, inside --out."""

from __future__ import annotations

import os
from html.parser import HTMLParser

import optuna
import pytest
from conftest import run_cli

from fcnn_opt.plots import OPTUNA_FIGURES


class _Resources(HTMLParser):
    """Every src/href attribute, and the size of each inline script."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[int] = []
        self.sections: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)
            if tag == "section" and name == "id":
                self.sections.append(value)
        if tag == "script":
            self._in_script = True
            self.scripts.append(0)

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += len(data)


def headless_env() -> dict:
    return {"DISPLAY": "", "WAYLAND_DISPLAY": ""}  # no display at all


def test_report_is_offline_html_with_every_figure_and_its_png(small_study, tmp_path):
    url, study = small_study
    extra = next(t.number for t in study.trials if t.state.name == "PRUNED")
    done = run_cli("report", "--study-name", "small", "--storage", url, "--trials", extra, cwd=tmp_path,
                   **headless_env())
    assert done.returncode == 0, done.stderr
    out = tmp_path / "studies" / "reports" / "small"
    assert f"report    {os.path.join('studies', 'reports', 'small', 'report.html')}" in done.stdout
    assert "skipped" not in done.stdout  # every figure could be drawn
    # Nothing is written outside --out.
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parts[:3] == ("studies", "reports", "small") for p in written)

    pngs = sorted(p.name for p in out.glob("*.png"))
    keys = [info.key for info in OPTUNA_FIGURES] + ["loss_histories", "response_best", "response_worst",
                                                    f"response_trial{extra}", "progress", "fit_best", "hp_surface",
                                                    "surrogate_pd", "surrogate_surface", "importance_uncertainty"]
    assert [name.split("_", 1)[1][:-4] for name in pngs] == keys
    page = (out / "report.html").read_text()
    parser = _Resources()
    parser.feed(page)
    assert parser.sections == keys
    # Offline: no element loads anything from a URL; plotly.js is embedded exactly once.
    remote = [link for link in parser.links if link.startswith(("http:", "https:", "//"))]
    assert remote == [], remote
    assert sum(size > 1_000_000 for size in parser.scripts) == 1
    assert page.count("Plotly.newPlot(") == len(keys)
    assert "<link" not in page and "@import" not in page
    assert all(link.startswith("#") or link in pngs for link in parser.links)


def test_default_folder_is_named_after_the_sanitised_study(small_study, tmp_path):
    url, _ = small_study
    storage = optuna.storages.RDBStorage(url)
    optuna.copy_study(from_study_name="small", from_storage=storage, to_storage=storage,
                      to_study_name="../evil name")
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli("report", "--study-name", "../evil name", "--storage", url, "--no-png", cwd=work)
    assert done.returncode == 0, done.stderr
    files = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert [str(p) for p in files] == [os.path.join("work", "studies", "reports", "__evil_name", "report.html")]


@pytest.mark.parametrize("args,expected", [
    (["--study-name", "ghost"], "No study named 'ghost'"),
    (["--study-name", "empty"], "has no complete trial yet"),
    (["--study-name", "small", "--color-by", "colour"], "color_by='colour' is not a parameter"),
    (["--study-name", "small", "--trials", "999"], "has no trial 999"),
    (["--study-name", "small", "--x", "lr", "--y", "lr"], "two different hyperparameters"),
])
def test_report_errors_exit_2_with_one_line(small_study, tmp_path, args, expected):
    url, _ = small_study
    if "empty" in args:
        optuna.create_study(study_name="empty", storage=url, load_if_exists=True)
    done = run_cli("report", *args, "--storage", url, "--out", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "report.html").exists()
