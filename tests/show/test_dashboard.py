"""``python -m fcnn_opt dashboard`` driven by a real headless Chromium (Selenium): the study is
listed, its trial count is right and a trial's response-surface artifact loads as an image.

Needs Debian's ``chromium`` and ``chromium-driver``; when they are missing the test installs
them with apt-get (as root), else skips, or fails under FCNN_OPT_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import cli_env, require_service

pytestmark = pytest.mark.browser

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromedriver")


def _chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installing Debian's packages when they are missing."""

    def found():
        browser = shutil.which("chromium") or (CHROMIUM[0] if os.path.exists(CHROMIUM[0]) else None)
        driver = shutil.which("chromedriver") or (CHROMIUM[1] if os.path.exists(CHROMIUM[1]) else None)
        return browser, driver

    browser, driver = found()
    if not (browser and driver) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run("apt-get update && apt-get install -y chromium chromium-driver", shell=True,
                       capture_output=True, timeout=900)
        browser, driver = found()
    if not (browser and driver):
        require_service("chromium", "no chromium/chromedriver, and `apt-get install -y chromium "
                                    "chromium-driver` was not possible here")
    return browser, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        require_service("selenium", f"cannot import selenium ({exc}); pip install selenium")
    binary, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
    except Exception as exc:  # e.g. a browser and driver of different versions
        require_service("chromium", f"cannot start headless chromium: {str(exc).splitlines()[0]}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(url: str, log: Path):
    """The dashboard command serving storage ``url`` on a free local port; yields its base URL."""
    port = _free_port()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "fcnn_opt", "dashboard", "--storage", url,
                                 "--port", str(port)], env=cli_env(), stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the dashboard did not start:\n{log.read_text()}")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def dashboard(small_study, tmp_path_factory):
    """The dashboard command serving the small study on a free local port."""
    url, study = small_study
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with _serving(url, log) as base:
        yield base, study, log


def _wait_for(driver, condition, timeout=30.0, what="page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    body = driver.find_element("tag name", "body").text[:2000]
    pytest.fail(f"timed out waiting for {what}; the page shows:\n{body}")


def test_dashboard_binds_locally_and_serves_the_artifact_store(dashboard):
    base, _, log = dashboard
    text = Path(log).read_text()
    assert "open http://127.0.0.1:" in text and "artifacts in" in text


def test_study_list_trial_count_and_artifact_image_in_chromium(browser, dashboard):
    base, study, _ = dashboard
    driver = browser
    body = lambda: driver.find_element("tag name", "body").text  # noqa: E731

    driver.get(f"{base}/dashboard")
    _wait_for(driver, lambda: "small" in body(), what="the study list")

    study_id = study._study_id
    n_trials = len(study.trials)
    driver.get(f"{base}/dashboard/studies/{study_id}/trials")
    _wait_for(driver, lambda: f"{n_trials} Trials" in body(), what=f"'{n_trials} Trials'")

    trial = study.best_trial
    driver.get(f"{base}/dashboard/studies/{study_id}/trials?numbers={trial.number}")
    _wait_for(driver, lambda: f"Trial {trial.number} (trial_id={trial._trial_id})" in body(),
              what=f"trial {trial.number}'s page")
    prefix = f"{base}/artifacts/{study_id}/{trial._trial_id}/"
    loaded = _wait_for(driver, lambda: driver.execute_script(
        "return Array.from(document.images).filter(i => i.src.startsWith(arguments[0]) && i.complete"
        " && i.naturalWidth > 0).map(i => [i.src, i.naturalWidth, i.naturalHeight]);", prefix),
        what="the trial's artifact image")
    assert len(loaded) == 1
    src, width, height = loaded[0]
    assert width > 600 and height > 200  # the response-surface PNG, decoded by the browser
    assert f"response_trial{trial.number}_circles.png" in body()


def test_require_service_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("FCNN_OPT_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not available: gone"):
        require_service("chromium", "gone")
    monkeypatch.setenv("FCNN_OPT_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="services must be present"):
        require_service("chromium", "gone")


def test_a_multi_objective_study_shows_its_pareto_front_in_chromium(browser, tmp_path):
    import optuna
    from conftest import run_cli, write_toml

    cfg = write_toml(tmp_path / "m.toml", """
[study]
name = "multi"
sampler = "nsga2"
n_trials = 10
objectives = ["val_loss", "n_params"]
[dataset]
name = "circles"
n_points = 300
[params]
epochs = 5
units = [2, 4, 8, 16]
""")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path).returncode == 0
    study = optuna.load_study(study_name="multi", storage=url)
    driver = browser
    body = lambda: driver.find_element("tag name", "body").text  # noqa: E731
    with _serving(url, tmp_path / "dashboard.log") as base:
        driver.get(f"{base}/dashboard/studies/{study._study_id}")
        _wait_for(driver, lambda: "Pareto Front" in body(), what="the Pareto front")
        # The plot is drawn: one point per complete trial in the front's plotly graph.
        points = _wait_for(driver, lambda: driver.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => (g.data || [])"
            ".reduce((n, t) => n + (t.x ? t.x.length : 0), 0)).reduce((a, b) => Math.max(a, b), 0);"),
            what="the Pareto front's points")
        assert points >= len(study.best_trials)
