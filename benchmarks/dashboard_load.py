"""How long optuna-dashboard's study page takes to load a 2,000-trial fcnn_opt study, in a real
headless Chromium. Prints a table; never a test.

    python benchmarks/dashboard_load.py [--trials 2000] [--repeats 3]

The study: W2 (``studies/tpe.toml``) run once as ``study`` runs it, then its 200 trials copied
ten times into one study (``add_trials``: the same rows, attributes and pictures), so each
trial weighs what a W2 trial weighs. The same is done with the trials of the release-0.1.0
fixture format (weights and histories as JSON attributes) for comparison. Timed from
``driver.get``: the study's trial list until it says "N Trials"; the study page until its best
trial is shown, and until its first chart has drawn.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(folder: Path, n_trials: int, legacy: bool) -> tuple[str, int]:
    """A study of ``n_trials`` W2 trials in ``folder``; returns its URL and database size."""
    import optuna

    source = f"sqlite:///{folder / 'w2.db'}"
    if not (folder / "w2.db").exists():
        subprocess.run([sys.executable, "-m", "fcnn_opt", "study", "--config", str(ROOT / "studies" / "tpe.toml"),
                        "--storage", source, "--no-progress"], check=True, cwd=folder, capture_output=True)
    trials = optuna.load_study(study_name="tpe", storage=source).get_trials(deepcopy=True)
    if legacy:  # 0.1.0 kept weights and histories in the trial row
        from fcnn_opt.store.artifact_files import RUN_FILE_ATTR, load_histories, load_weights

        for t in trials:
            if RUN_FILE_ATTR in t.user_attrs:
                histories = load_histories(t)
                weights = [[W.round(7).tolist(), b.round(7).tolist()] for W, b in load_weights(t)]
                attrs = {k: v for k, v in t.user_attrs.items() if k != RUN_FILE_ATTR}
                t.user_attrs = {**attrs, **histories, "weights": json.loads(json.dumps(weights))}
    name = "legacy" if legacy else "current"
    url = f"sqlite:///{folder / (name + '.db')}"
    study = optuna.create_study(study_name="big", storage=url)
    copies = []
    while len(copies) < n_trials:
        copies += trials
    study.add_trials(copies[:n_trials])
    return url, os.path.getsize(folder / (name + ".db"))


def measure(url: str, artifacts: Path, repeats: int) -> list[tuple[float, float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "fcnn_opt", "dashboard", "--storage", url, "--port", str(port),
                               "--artifact-dir", str(artifacts)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        study_id = json.load(urllib.request.urlopen(f"{base}/api/studies"))["study_summaries"][0]["study_id"]
        n = json.load(urllib.request.urlopen(f"{base}/api/studies"))["study_summaries"][0]
        n_trials = n.get("n_trials") or 0
        results = []
        body = lambda: driver.find_element("tag name", "body").text  # noqa: E731
        traces = "return document.querySelectorAll('.js-plotly-plot .trace').length"
        for _ in range(repeats):
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(f"{base}/dashboard/studies/{study_id}/trials")
            while f"{n_trials} Trials" not in body() and time.perf_counter() - start < 120:
                time.sleep(0.02)
            trials_page = time.perf_counter() - start
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(f"{base}/dashboard/studies/{study_id}")
            content = charts = None
            while time.perf_counter() - start < 120:
                if content is None and "Best" in body():
                    content = time.perf_counter() - start
                if driver.execute_script(traces) > 0:
                    charts = time.perf_counter() - start
                    break
                time.sleep(0.02)
            results.append((trials_page, content or math.inf, charts or math.inf))
        return results
    finally:
        driver.quit()
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = []
        for legacy in (False, True):
            url, size = build(folder, args.trials, legacy)
            timings = measure(url, folder / "artifacts", args.repeats)
            medians = [sorted(column)[len(column) // 2] for column in zip(*timings, strict=True)]
            rows.append(["0.1.0 format (JSON weights, histories)" if legacy else "current (run files)",
                         args.trials, round(size / 1e6, 2), *(round(m, 2) for m in medians)])
    from fcnn_opt.cli.text import table

    print(table(["trial rows", "trials", "db MB", "trial list s", "study page s", "its charts s"], rows))
    print(f"Medians of {args.repeats} loads each in headless Chromium (software rendering), the server's trial "
          "cache warm. trial list: until it says 'N Trials'; study page: until its best trial is shown; its "
          "charts: until the first plotly trace is drawn (optuna-dashboard draws every trial's intermediate "
          "values). Target: the study page under 2 s.")


if __name__ == "__main__":
    main()
