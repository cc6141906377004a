"""Make the images of docs/results.md: ``python docs/make_results.py``.

Runs the page's two studies through the command line, in a temporary folder: studies/tpe.toml
with 60 trials and three seeds per trial, and studies/pareto.toml (accuracy against size).
Writes docs/images/results_pareto_front.png and docs/images/results_pareto_networks.png (the
report's response surfaces of three Pareto trials, stacked), and prints what `best`,
`evaluate` and `export` print, which the page quotes. About half a minute on one core.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def cli(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "fcnn_opt", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)
    print(f"$ python -m fcnn_opt {' '.join(args)}\n{done.stdout}")
    return done.stdout


def stack(pngs: list[Path], out: Path, width: int = 1100) -> None:
    """The pictures one above the other, scaled to ``width`` pixels."""
    from PIL import Image

    images = [Image.open(p).convert("RGB") for p in pngs]
    images = [im.resize((width, round(im.height * width / im.width)), Image.LANCZOS) for im in images]
    sheet = Image.new("RGB", (width, sum(im.height for im in images)), "white")
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height
    sheet.save(out, optimize=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 'results.db'}"
        cli("study", "--config", str(ROOT / "studies" / "tpe.toml"), "--n-trials", "60", "--repeats", "3",
            "--study-name", "tpe3", "--storage", url, "--no-progress", cwd=work)
        cli("best", "--study-name", "tpe3", "--storage", url, cwd=work)
        for fmt, name in (("npz", "best.npz"), ("torch", "best.pt2"), ("onnx", "best.onnx"),
                          ("sklearn", "best.pkl"), ("keras", "best.keras")):
            cli("export", "--study-name", "tpe3", "--storage", url, "--format", fmt, "--out", name, cwd=work)
        cli("study", "--config", str(ROOT / "studies" / "pareto.toml"), "--storage", url, "--no-progress", cwd=work)
        cli("evaluate", "--study-name", "pareto", "--storage", url, "--trial",
            _middle_of_front(url), cwd=work)
        cli("report", "--study-name", "pareto", "--storage", url, "--out", "report", cwd=work)
        report = work / "report"
        (IMAGES / "results_pareto_front.png").write_bytes((report / "01_pareto_front.png").read_bytes())
        stack(sorted(report.glob("0[234]_response_*.png")), IMAGES / "results_pareto_networks.png")
    print(f"wrote {IMAGES / 'results_pareto_front.png'} and {IMAGES / 'results_pareto_networks.png'}")


def _middle_of_front(url: str) -> str:
    import optuna

    front = sorted(optuna.load_study(study_name="pareto", storage=url).best_trials, key=lambda t: t.values[0])
    return str(front[len(front) // 2].number)


if __name__ == "__main__":
    main()
