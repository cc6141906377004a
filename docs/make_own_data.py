"""Make the images of docs/own-data.md: ``python docs/make_own_data.py``.

Runs studies/breast_cancer.toml (scikit-learn's breast cancer table, 30 features) through the
command line in a temporary folder, prints what `study`, `best` and `export` print (the page
quotes it), and copies the report's response slice of the best trial and its confusion matrix
to docs/images/own_data_response.png and docs/images/own_data_fit.png. About 20 seconds.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_results import IMAGES, ROOT, cli  # noqa: E402  (the same way of running the commands)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        url = f"sqlite:///{work / 'own.db'}"
        cli("study", "--config", str(ROOT / "studies" / "breast_cancer.toml"), "--storage", url, "--no-progress",
            cwd=work)
        cli("best", "--study-name", "breast_cancer", "--storage", url, cwd=work)
        cli("export", "--study-name", "breast_cancer", "--storage", url, "--format", "sklearn", "--out",
            "tumours.pkl", cwd=work)
        cli("report", "--study-name", "breast_cancer", "--storage", url, "--out", "report", cwd=work)
        report = work / "report"
        for pattern, name in (("*_response_best.png", "own_data_response.png"), ("*_fit_best.png", "own_data_fit.png")):
            (IMAGES / name).write_bytes(next(report.glob(pattern)).read_bytes())
    print(f"wrote {IMAGES / 'own_data_response.png'} and {IMAGES / 'own_data_fit.png'}")


if __name__ == "__main__":
    main()
