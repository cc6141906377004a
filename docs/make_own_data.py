"""Make the images of docs/own-data.md: ``python docs/make_own_data.py``.

Runs studies/breast_cancer.toml (scikit-learn's breast cancer table, 30 features) through the
command line in a temporary folder (a minute of search, as shipped), prints what `study`,
`best`, `evaluate` and `export` print (the page quotes it), and copies the report's response
slice of the best trial and its confusion matrix to docs/images/own_data_response.png and
docs/images/own_data_fit.png. About a minute and a half.
Then draws the dashboard picture of a network with one input (docs/images/own_data_one_input.png).
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
        cli("evaluate", "--study-name", "breast_cancer", "--storage", url, cwd=work)
        cli("export", "--study-name", "breast_cancer", "--storage", url, "--format", "onnx", "--out",
            "tumours.onnx", cwd=work)
        cli("export", "--study-name", "breast_cancer", "--storage", url, "--format", "sklearn", "--best", "--out",
            "tumours.pkl", cwd=work)
        cli("report", "--study-name", "breast_cancer", "--storage", url, "--out", "report", cwd=work)
        report = work / "report"
        for pattern, name in (("*_response_best.png", "own_data_response.png"), ("*_fit_best.png", "own_data_fit.png")):
            (IMAGES / name).write_bytes(next(report.glob(pattern)).read_bytes())
    print(f"wrote {IMAGES / 'own_data_response.png'} and {IMAGES / 'own_data_fit.png'}")
    one_input_picture()


def one_input_picture() -> None:
    """A table with one input column (a made-up dose and whether a response came): the
    optuna-dashboard picture draws the network's probability along that input."""
    import numpy as np

    import fcnn_opt
    from fcnn_opt.show.pictures import response_png

    rng = np.random.default_rng(0)
    dose = rng.uniform(0, 12, size=(500, 1))
    responded = np.sin(dose[:, 0] / 1.6) + 0.35 * rng.normal(size=500) > 0
    data = fcnn_opt.Dataset.from_arrays(dose, np.where(responded, "yes", "no"), feature_names=["dose"],
                                        task="classify", name="dose response")
    config = fcnn_opt.TrainConfig(dims=(32,), epochs=120, activation="tanh", optimizer="adam", lr=0.02,
                                  batch_size=32)
    result = fcnn_opt.train(data, config)
    png = response_png(data, result.weights(), "tanh", result.train_loss, result.val_loss,
                       title="dims: 1-32-1, activation: tanh, optimizer: adam, lr: 0.02, epochs: 120",
                       subtitle=f"dose response, final val_loss {result.val_loss[-1]:.4g}")
    (IMAGES / "own_data_one_input.png").write_bytes(png)
    print(f"wrote {IMAGES / 'own_data_one_input.png'}")


if __name__ == "__main__":
    main()
