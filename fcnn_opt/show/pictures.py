"""A trial's picture for optuna-dashboard, drawn as pixels: model output | ground truth | loss.

The same three panels as :func:`fcnn_opt.show.figures._response.draw_response_mpl`, but the
model's output on the grid goes straight from array to image (no contouring, no figure
layout) and the points, the sampled region and the loss curves are drawn with Pillow:
about 10 ms a picture against about 150 ms with matplotlib. The matplotlib and plotly
figures stay for the report and notebooks. A network with one input is drawn as the report
draws it: its output along that input as a curve over the training points, across the two
surface panels' width.

    >>> import fcnn_opt
    >>> from fcnn_opt.show.pictures import response_png
    >>> data = fcnn_opt.make_dataset("circles", n_points=400)
    >>> result = fcnn_opt.train(data, fcnn_opt.TrainConfig(dims=(8,), epochs=5))
    >>> png = response_png(data, result.weights(), "relu", result.train_loss, result.val_loss,
    ...                    title="circles, 8 units", subtitle="5 epochs")
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np

from fcnn_opt.show.figures._common import TAB10
from fcnn_opt.show.figures._response import grid_output, value_range
from fcnn_opt.training.backends._numpy import NumpyNet
from fcnn_opt.training.datasets import BINARY, MULTICLASS, REGRESSION, Dataset
from fcnn_opt.training.tables import drawn_over_important_plane

# ColorBrewer's Spectral, red to blue (binary: probability of class 1; regression: reversed).
SPECTRAL = ["#9e0142", "#d53e4f", "#f46d43", "#fdae61", "#fee08b", "#ffffbf", "#e6f598",
            "#abdda4", "#66c2a5", "#3288bd", "#5e4fa2"]
PANEL = 280  # pixels per surface panel
RESOLUTION = 101  # grid points per axis, as the original's pictures
TRAIN, VALID = "#1f77b4", "#ff7f0e"


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)


def _ramp(values: np.ndarray, colors: list[str]) -> np.ndarray:
    """Values in [0, 1] to RGB by linear interpolation between ``colors``."""
    anchors = np.stack([_rgb(c) for c in colors])
    position = np.clip(np.nan_to_num(values, nan=0.5), 0, 1) * (len(colors) - 1)
    low = np.floor(position).astype(int).clip(0, len(colors) - 2)
    frac = (position - low)[..., None]
    return anchors[low] * (1 - frac) + anchors[low + 1] * frac


def _surface_rgb(z: np.ndarray, task: str, n_classes: int, vrange: tuple[float, float]) -> np.ndarray:
    """A (rows, cols, 3) uint8 image of a surface, rows top-down."""
    white = np.array([255.0, 255.0, 255.0])
    if task == MULTICLASS:
        palette = np.stack([_rgb(TAB10[i % 10]) for i in range(n_classes)])
        index = np.nan_to_num(z, nan=0).astype(int).clip(0, n_classes - 1)
        rgb = palette[index] * 0.45 + white * 0.55  # the class colour at matplotlib's alpha 0.45
    elif task == BINARY:
        rgb = _ramp(z, SPECTRAL) * 0.55 + white * 0.45
    else:
        lo, hi = vrange
        rgb = _ramp((z - lo) / (hi - lo), SPECTRAL[::-1]) * 0.8 + white * 0.2
    rgb[~np.isfinite(z)] = 235.0
    return rgb[::-1].astype(np.uint8)  # the grid's second axis grows upwards


@cache
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _predictor(dataset: Dataset, weights, activation: str):
    net = NumpyNet([(np.asarray(W, np.float32), np.asarray(b, np.float32)) for W, b in weights],
                   activation, dataset.task)
    return lambda points: net.predict(points.astype(np.float32))


def response_png(dataset: Dataset, weights, activation: str, train_loss, val_loss, *, title: str,
                 subtitle: str = "") -> bytes:
    """The PNG bytes of a trained network's picture (see the module docstring)."""
    predict = _predictor(dataset, weights, activation)
    image = _response_image(drawn_over_important_plane(dataset, predict), predict, train_loss, val_loss,
                            title=title, subtitle=subtitle)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


FRAME_MS, LAST_FRAME_MS = 500, 2000  # how long each epoch shows in an animated picture


def animated_png(dataset: Dataset, snapshots: dict, activation: str, train_loss, val_loss, *, title: str,
                 subtitle: str = "") -> bytes:
    """An animated PNG (APNG: browsers and optuna-dashboard play it, other viewers show the
    first frame) of the network's output over the plane after each snapshot epoch, above a
    strip of its validation loss marked at that epoch. Kept small (one panel) so that it
    costs little beside the trial's still picture; wide data is drawn over the final
    network's plane throughout."""
    from PIL import Image, ImageDraw

    epochs = sorted(snapshots)
    dataset = drawn_over_important_plane(dataset, _predictor(dataset, snapshots[epochs[-1]], activation))
    left, top, strip = 12, 44, 64
    below = 22 if dataset.n_features == 1 else 10  # one input: room for the x axis's labels
    width, height = PANEL + 2 * left, top + PANEL + below + strip + 18
    losses = [v for v in val_loss if v is not None and np.isfinite(v)]
    lo, hi = (min(losses), max(losses)) if losses else (0.0, 1.0)
    frames = []
    for epoch in epochs:
        predict = _predictor(dataset, snapshots[epoch], activation)
        if dataset.n_features == 1:  # one input: its curve, as in the still picture
            image = Image.new("RGB", (width, height), "white")
            draw = ImageDraw.Draw(image)
            _curve_panel(draw, dataset, predict, left, top, PANEL, PANEL)
        else:
            a1, a2, output, truth = grid_output(dataset, predict, RESOLUTION)
            canvas = np.full((height, width, 3), 255, dtype=np.uint8)
            smooth = Image.Resampling.NEAREST if dataset.task == MULTICLASS else Image.Resampling.BILINEAR
            vrange = value_range(dataset.y_train, output, truth)
            tile = Image.fromarray(_surface_rgb(output, dataset.task, dataset.n_classes, vrange)).resize(
                (PANEL, PANEL), smooth)
            canvas[top:top + PANEL, left:left + PANEL] = np.asarray(tile)
            _stamp_points(canvas, dataset, a1, a2, left, top)
            image = Image.fromarray(canvas)
            draw = ImageDraw.Draw(image)
        draw.text((width // 2, 4), title, fill="black", font=_font(11), anchor="ma")
        draw.text((width // 2, 22), f"after epoch {epoch} of {len(val_loss)}" + (f"; {subtitle}" if subtitle else ""),
                  fill="#333333", font=_font(11), anchor="ma")
        draw.rectangle((left, top, left + PANEL, top + PANEL), outline="#444444")
        _loss_strip(draw, left, top + PANEL + below, PANEL, strip, val_loss, lo, hi, epoch)
        frames.append(image)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:], loop=0, compress_level=1,
                   duration=[FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS])
    return buffer.getvalue()


def _loss_strip(draw, left: int, top: int, width: int, height: int, val_loss, lo: float, hi: float,
                epoch: int) -> None:
    """The validation loss per epoch as a thin curve, the epoch shown as a vertical line."""
    span = (hi - lo) or 1.0
    n = max(len(val_loss), 1)
    xy = [(left + width * (i + 0.5) / n, top + height - height * (v - lo) / span)
          for i, v in enumerate(val_loss) if v is not None and np.isfinite(v)]
    draw.rectangle((left, top, left + width, top + height), outline="#bbbbbb")
    if len(xy) > 1:
        draw.line(xy, fill=VALID, width=2)
    x = left + width * (epoch - 0.5) / n
    draw.line((x, top, x, top + height), fill="#333333", width=1)
    draw.text((left, top + height + 3), f"validation loss {hi:.3g} to {lo:.3g}", fill="#333333", font=_font(10))


def _response_image(dataset: Dataset, predict, train_loss, val_loss, *, title: str, subtitle: str = "",
                    epoch: int | None = None):
    """The picture as a Pillow image; with ``epoch``, of the network after that epoch (a frame)."""
    from PIL import Image, ImageDraw

    if dataset.n_features == 1:
        return _curve_image(dataset, predict, train_loss, val_loss, title=title, subtitle=subtitle, epoch=epoch)
    if dataset.feature_names is not None:  # own data: say which inputs the panels show
        axes = " / ".join(name.replace(" (standardised)", "") for name in dataset.plane_names if name)
        extra = "; others at medians" if dataset.n_features > 2 else ""
        subtitle = "; ".join(filter(None, [subtitle, f"across: {axes} (standardised){extra}"]))
    a1, a2, output, truth = grid_output(dataset, predict, RESOLUTION)
    vrange = value_range(dataset.y_train, output, truth)

    width, top, gap = 3 * PANEL + 4 * 36 + 40, 62, 36
    image = Image.new("RGB", (width, top + PANEL + 50), "white")
    lefts = [gap, 2 * gap + PANEL, 3 * gap + 2 * PANEL + 40]
    positive = dataset.class_names[1] if dataset.class_names else "class 1"
    output_title = {BINARY: f"model: probability of {positive}", MULTICLASS: "model: predicted class",
                    REGRESSION: "model: predicted value"}[dataset.task]
    if epoch is not None:
        output_title = output_title.replace("model:", f"after epoch {epoch}:")
    canvas = np.asarray(image).copy()  # the surfaces and points are drawn as arrays
    panels = ((lefts[0], output, output_title), (lefts[1], truth, "ground truth"))
    for left, z, _ in panels:
        if z is None:
            canvas[top:top + PANEL, left:left + PANEL] = 244
            continue
        smooth = Image.Resampling.NEAREST if dataset.task == MULTICLASS else Image.Resampling.BILINEAR
        tile = Image.fromarray(_surface_rgb(z, dataset.task, dataset.n_classes, vrange)).resize(
            (PANEL, PANEL), smooth)
        canvas[top:top + PANEL, left:left + PANEL] = np.asarray(tile)
        if dataset.task == BINARY:  # the decision boundary, p = 0.5, as a dark line
            p = np.asarray(Image.fromarray(np.nan_to_num(z[::-1], nan=0.5).astype(np.float32), mode="F")
                           .resize((PANEL, PANEL), Image.Resampling.BILINEAR)) >= 0.5
            edge = np.zeros_like(p)
            edge[:, 1:] |= p[:, 1:] != p[:, :-1]
            edge[1:, :] |= p[1:, :] != p[:-1, :]
            canvas[top:top + PANEL, left:left + PANEL][edge] = (30, 30, 30)
    for left, _, _ in panels:
        _stamp_points(canvas, dataset, a1, a2, left, top)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for left, z, label in panels:
        label = label if z is not None else "ground truth: no formula"
        draw.text((left + PANEL // 2, top - 16), label, fill="black", font=_font(12), anchor="ma")
        _sampled_region(draw, dataset, a1, a2, left, top)
        draw.rectangle((left, top, left + PANEL, top + PANEL), outline="#444444")
    draw.text((width // 2, 6), title, fill="black", font=_font(15), anchor="ma")
    if subtitle:
        draw.text((width // 2, 26), subtitle, fill="#333333", font=_font(12), anchor="ma")
    _loss_panel(draw, lefts[2], top, train_loss, val_loss, dataset.task, epoch)
    legend = {MULTICLASS: "dots: training points by class; shaded: predicted class; dashed box: sampled region",
              BINARY: f"dots: training points by class; red to blue: probability of {positive}; dashed box: "
                      "sampled region",
              REGRESSION: f"black dots: training points; colour: value from {vrange[0]:.3g} (blue) to "
                          f"{vrange[1]:.3g} (red); dashed box: sampled region"}
    draw.text((lefts[0], top + PANEL + 10), legend[dataset.task], fill="#333333", font=_font(12))
    if dataset.task != REGRESSION:
        _class_swatches(draw, dataset, lefts[0], top + PANEL + 30)
    return image


def _curve_image(dataset: Dataset, predict, train_loss, val_loss, *, title: str, subtitle: str = "",
                 epoch: int | None = None):
    """One input: the model's output along it as a curve over the training points, across
    the width of the two surface panels (a plane would show stripes), and the loss beside it."""
    from PIL import Image, ImageDraw

    width, top, gap = 3 * PANEL + 4 * 36 + 40, 62, 36
    left, loss_left = gap, 3 * gap + 2 * PANEL + 40
    image = Image.new("RGB", (width, top + PANEL + 66), "white")  # room for the x axis's labels
    draw = ImageDraw.Draw(image)
    label, has_truth = _curve_panel(draw, dataset, predict, left, top, 2 * PANEL + gap, PANEL)
    if epoch is not None:
        label = label.replace("model:", f"after epoch {epoch}:")
    draw.text((left + PANEL + gap // 2, top - 16), label, fill="black", font=_font(12), anchor="ma")
    draw.text((width // 2, 6), title, fill="black", font=_font(15), anchor="ma")
    if subtitle:
        draw.text((width // 2, 26), subtitle, fill="#333333", font=_font(12), anchor="ma")
    _loss_panel(draw, loss_left, top, train_loss, val_loss, dataset.task, epoch)
    legend = {REGRESSION: "grey dots: training points; line: the model's prediction",
              BINARY: "dots: training points by class, at 0 and 1; shaded: predicted class",
              MULTICLASS: "lines: each class's probability; dots below: training points by class; shaded: "
                          "predicted class"}
    extra = "; dashed: sampled range" + ("; dotted grey: ground truth" if has_truth else "")
    draw.text((left, top + PANEL + 24), legend[dataset.task] + extra, fill="#333333", font=_font(12))
    if dataset.task != REGRESSION:
        _class_swatches(draw, dataset, left, top + PANEL + 44)
    return image


def _curve_panel(draw, dataset: Dataset, predict, left: int, top: int, width: int, height: int) -> tuple[str, bool]:
    """Draw one input's panel: regression, the predicted value over the training points;
    classes, the probability of each (of the positive class for two) with the predicted
    class shaded and the training points at 0 and 1 (two classes) or in a band below.
    Returns the panel's title and whether a ground truth was drawn."""
    x_lo, x_hi, _, _ = dataset.bounds()
    xs = np.linspace(x_lo, x_hi, width)
    with np.errstate(all="ignore"):
        raw = np.asarray(predict(xs[:, None].astype(np.float32)), dtype=np.float64)
    X = np.asarray(dataset.X_train[:, 0], dtype=np.float64)
    y = np.asarray(dataset.y_train).ravel()
    step = max(1, len(X) // 2000)
    X, y = X[::step], y[::step]
    colors = _class_colors(dataset)
    if dataset.task == REGRESSION:
        curves = [(raw.ravel(), "#222222")]
        # The value axis fits the points and the curve over the sampled range; beyond it the
        # curve may leave the panel (it is clipped at its edge).
        inside = raw.ravel()[(xs >= X.min()) & (xs <= X.max())]
        finite = inside[np.isfinite(inside)]
        spread = np.concatenate([y.astype(float), np.percentile(finite, [1, 99]) if finite.size else []])
        lo, hi = float(spread.min()), float(spread.max())
        pad = (hi - lo) * 0.06 or 1.0
        lo, hi = lo - pad, hi + pad
        label, rows = "model: predicted value (standardised)", y.astype(float)  # as the report says it
    else:
        probabilities = raw if dataset.task == MULTICLASS else np.column_stack([1 - raw.ravel(), raw.ravel()])
        curves = ([(probabilities[:, k], colors[k]) for k in range(probabilities.shape[1])]
                  if dataset.task == MULTICLASS else [(probabilities[:, 1], "#222222")])
        lo, hi = -0.12 if dataset.task == MULTICLASS else -0.06, 1.06
        positive = dataset.class_names[1] if dataset.class_names else "class 1"
        label = ("model: probability of each class" if dataset.task == MULTICLASS
                 else f"model: probability of {positive}")
        jitter = np.random.default_rng(0).uniform(-0.025, 0.025, len(y))  # overlapping points show as a band
        rows = (np.full(len(y), -0.07) if dataset.task == MULTICLASS else y.astype(float)) + jitter

    def to_x(v):
        return left + (np.asarray(v, dtype=float) - x_lo) * width / (x_hi - x_lo)

    def to_y(v):
        return top + height - (np.clip(np.asarray(v, dtype=float), lo, hi) - lo) * height / (hi - lo)

    if dataset.task != REGRESSION:  # the predicted class, shaded as the surfaces shade it
        shades = [tuple(int(v) for v in _rgb(c) * 0.18 + 255 * 0.82) for c in colors]
        predicted = np.where(np.isfinite(probabilities).all(axis=1), np.argmax(probabilities, axis=1), -1)
        start = 0
        for column in range(1, width + 1):
            if column == width or predicted[column] != predicted[start]:
                shade = (235, 235, 235) if predicted[start] < 0 else shades[predicted[start] % len(shades)]
                draw.rectangle((left + start, top, left + column, top + height), fill=shade)
                start = column
        for level in (0.0, 0.5, 1.0):
            draw.line((left + 1, float(to_y(level)), left + width - 1, float(to_y(level))), fill="#d0d0d0")
    if dataset.task == REGRESSION:
        fills, rims = [(90, 90, 90)] * len(y), [(40, 40, 40)] * len(y)
    else:
        rgb = np.stack([_rgb(c) for c in colors])[y.astype(int) % len(colors)]
        fills = [tuple(int(v) for v in c) for c in rgb]
        rims = [tuple(int(v) for v in c * 0.45) for c in rgb]
    for px, py, fill, rim in zip(to_x(X), to_y(rows), fills, rims, strict=True):
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=fill, outline=rim)
    truth = dataset.ground_truth(xs[:, None]) if dataset.task != MULTICLASS else None
    if truth is not None:  # dotted: a short dash every 8 pixels
        for a in range(0, width - 4, 8):
            draw.line([(float(to_x(xs[i])), float(to_y(truth[i]))) for i in range(a, a + 5)], fill="#777777")
    for values, color in curves:
        finite = np.isfinite(values)
        if finite.sum() > 1:
            draw.line(list(zip(to_x(xs[finite]).tolist(), to_y(values[finite]).tolist(), strict=True)),
                      fill=color, width=2)
    for edge in (X.min(), X.max()):  # the sampled range, as the surfaces' dashed box
        _dashed(draw, (float(to_x(edge)), top + 1), (float(to_x(edge)), top + height - 1))
    font = _font(11)
    draw.rectangle((left, top, left + width, top + height), outline="#444444")
    if dataset.task == REGRESSION:
        draw.text((left - 4, top), f"{hi:.3g}", fill="#333333", font=font, anchor="ra")
        draw.text((left - 4, top + height), f"{lo:.3g}", fill="#333333", font=font, anchor="rd")
    else:
        draw.text((left - 4, float(to_y(1.0))), "1", fill="#333333", font=font, anchor="rm")
        draw.text((left - 4, float(to_y(0.0))), "0", fill="#333333", font=font, anchor="rm")
    draw.text((left, top + height + 4), f"{x_lo:.3g}", fill="#333333", font=font)
    draw.text((left + width, top + height + 4), f"{x_hi:.3g}", fill="#333333", font=font, anchor="ra")
    draw.text((left + width // 2, top + height + 4), dataset.plane_names[0], fill="#333333", font=font, anchor="ma")
    return label, truth is not None


def _class_swatches(draw, dataset: Dataset, left: int, top: int) -> None:
    """One swatch per class, its colour and name, in a row from ``(left, top)``."""
    x = left
    for k, color in enumerate(_class_colors(dataset)):
        name = dataset.class_names[k] if dataset.class_names else f"class {k}"
        draw.ellipse((x, top + 3, x + 8, top + 11), fill=color, outline="#333333")
        draw.text((x + 12, top), name, fill="#333333", font=_font(12))
        x += max(70, 20 + 7 * len(name))


def _class_colors(dataset: Dataset) -> list[str]:
    if dataset.task == MULTICLASS:
        return [TAB10[k % 10] for k in range(dataset.n_classes)]
    return [SPECTRAL[1], SPECTRAL[9]]


# A dot 5 pixels across: its rim in a dark edge colour, its inside in the class colour.
_DOT = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3) if dx * dx + dy * dy <= 5]
_RIM = [(dx, dy) for dx, dy in _DOT if dx * dx + dy * dy > 1]
_INSIDE = [(dx, dy) for dx, dy in _DOT if dx * dx + dy * dy <= 1]


def _stamp_points(canvas: np.ndarray, dataset: Dataset, a1, a2, left: int, top: int, limit: int = 2000) -> None:
    """Training points (at most ``limit``, an even sample) drawn into the image array."""
    X, y = dataset.on_plane(dataset.X_train), dataset.y_train
    step = max(1, len(X) // limit)
    X, y = X[::step], np.asarray(y[::step]).ravel()
    px = np.round(left + (X[:, 0] - a1[0]) * PANEL / (a1[-1] - a1[0])).astype(int)
    py = np.round(top + PANEL - (X[:, 1] - a2[0]) * PANEL / (a2[-1] - a2[0])).astype(int)
    if dataset.task == REGRESSION:
        keep = (px >= left) & (px < left + PANEL) & (py >= top) & (py < top + PANEL)
        canvas[py[keep], px[keep]] = (40, 40, 40)
        return
    colors = np.stack([_rgb(c) for c in _class_colors(dataset)]).astype(np.uint8)
    fill = colors[y.astype(int) % len(colors)]
    edge = (fill * 0.45).astype(np.uint8)
    for offsets, color in ((_RIM, edge), (_INSIDE, fill)):
        for dx, dy in offsets:
            x, v = px + dx, py + dy
            keep = (x >= left) & (x < left + PANEL) & (v >= top) & (v < top + PANEL)
            canvas[v[keep], x[keep]] = color[keep]


def _sampled_region(draw, dataset: Dataset, a1, a2, left: int, top: int) -> None:
    """The dashed box around the region the training points were sampled from."""
    sx = PANEL / (a1[-1] - a1[0])
    sy = PANEL / (a2[-1] - a2[0])
    plane = dataset.on_plane(dataset.X_train)
    lo, hi = plane.min(axis=0), plane.max(axis=0)
    x0, x1 = left + (lo[0] - a1[0]) * sx, left + (hi[0] - a1[0]) * sx
    y0, y1 = top + PANEL - (hi[1] - a2[0]) * sy, top + PANEL - (lo[1] - a2[0]) * sy
    for start, end in (((x0, y0), (x1, y0)), ((x0, y1), (x1, y1)), ((x0, y0), (x0, y1)), ((x1, y0), (x1, y1))):
        _dashed(draw, start, end)


def _dashed(draw, start, end, dash: float = 5, gap: float = 4) -> None:
    (x0, y0), (x1, y1) = start, end
    length = float(np.hypot(x1 - x0, y1 - y0))
    if length == 0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    at = 0.0
    while at < length:
        stop = min(at + dash, length)
        draw.line((x0 + ux * at, y0 + uy * at, x0 + ux * stop, y0 + uy * stop), fill="#333333", width=1)
        at = stop + gap


def _loss_panel(draw, left: int, top: int, train_loss, val_loss, task: str, epoch: int | None = None) -> None:
    """Train and validation loss per epoch, with their range and epochs written on the axes;
    ``epoch`` is marked with a vertical line (an animation's frame)."""
    font = _font(11)
    width = PANEL + 20
    name = {BINARY: "binary cross-entropy", MULTICLASS: "cross-entropy", REGRESSION: "mean squared error"}[task]
    draw.text((left + width // 2, top - 16), f"loss history ({name})", fill="black", font=_font(12),
              anchor="ma")
    draw.rectangle((left, top, left + width, top + PANEL), outline="#444444")
    curves = [(list(v), color) for v, color in ((train_loss, TRAIN), (val_loss, VALID)) if len(v)]
    values = np.array([x for v, _ in curves for x in v if x is not None and np.isfinite(x)], dtype=float)
    if values.size == 0:
        draw.text((left + width // 2, top + PANEL // 2), "no finite loss", fill="#777777", font=font, anchor="mm")
        return
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.06 or abs(hi) * 0.1 or 1.0
    lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad  # a loss is never negative
    epochs = max(len(v) for v, _ in curves)
    for fraction in (0.25, 0.5, 0.75):
        y = top + PANEL * fraction
        draw.line((left + 1, y, left + width - 1, y), fill="#e6e6e6")
    for v, color in curves:
        xy = [(left + width * (i + 0.5) / epochs, top + PANEL * (hi - x) / (hi - lo))
              for i, x in enumerate(v) if x is not None and np.isfinite(x)]
        if len(xy) > 1:
            draw.line(xy, fill=color, width=2)
        elif xy:
            draw.ellipse((xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2), fill=color)
    draw.text((left - 4, top), f"{hi:.3g}", fill="#333333", font=font, anchor="ra")
    draw.text((left - 4, top + PANEL), f"{lo:.3g}", fill="#333333", font=font, anchor="rd")
    if epoch is not None:
        x = left + width * (epoch - 0.5) / epochs
        draw.line((x, top + 1, x, top + PANEL - 1), fill="#333333", width=1)
        draw.text((x + 3 if x < left + width * 0.7 else x - 3, top + PANEL - 6), f"epoch {epoch}", fill="#333333",
                  font=font, anchor="ld" if x < left + width * 0.7 else "rd")
    draw.text((left, top + PANEL + 4), "epoch 1", fill="#333333", font=font)
    draw.text((left + width, top + PANEL + 4), f"{epochs}", fill="#333333", font=font, anchor="ra")
    key_y = top + 10
    for label, color in (("train", TRAIN), ("validation", VALID)):
        draw.line((left + width - 110, key_y + 6, left + width - 88, key_y + 6), fill=color, width=2)
        draw.text((left + width - 82, key_y), label, fill="#333333", font=font)
        key_y += 16
