"""Pictures of a run, drawn with matplotlib's headless backend: training curves and the confusion matrix."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roberta_ft.artifacts import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path, *, crop: bool = True) -> None:
    """PNG at 120 dpi, written atomically. `crop` measures what is drawn and crops to it (one more drawing
    pass): for figures whose parts reach outside the axes' margins (a legend beside the axes, Optuna's)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight" if crop else None)
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue()), binary=True)


def training_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Train loss (per logged step and per epoch) and the validation metrics per epoch, best epoch marked."""
    plt = _pyplot()
    epochs = metrics["epochs"]
    primary = metrics["primary_metric"]
    from matplotlib.ticker import MaxNLocator

    names = [k for k, v in epochs[0].items() if isinstance(v, float) and k not in ("train_loss", "epoch", "step")]
    if not names:  # a run without validation rows (a few-shot run, --validation none): the loss panel alone
        figure, loss_axis = plt.subplots(figsize=(5.5, 4))
        metric_axis = None
    else:
        # One epoch axis for both panels, in whole epochs, so a loss bump and a metric drop line up.
        figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    loss_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    steps = metrics.get("steps") or []
    if steps:
        loss_axis.plot(
            [s["epoch"] for s in steps],
            [s["loss"] for s in steps],
            color="tab:blue",
            alpha=0.25,
            linewidth=0.8,
            label="train loss (steps)",
        )
        # Step losses are noisy (one small batch each): a moving average shows the trend through the noise.
        window = max(5, len(steps) // 25)
        if len(steps) >= 2 * window:
            import numpy as np

            smoothed = np.convolve([s["loss"] for s in steps], np.ones(window) / window, mode="valid")
            loss_axis.plot(
                [s["epoch"] for s in steps][window - 1 :],
                smoothed,
                color="tab:orange",
                linewidth=1.5,
                label=f"moving average ({window} steps)",
            )
    loss_axis.plot(
        [e["epoch"] for e in epochs],
        [e["train_loss"] for e in epochs],
        "o-",
        color="tab:blue",
        label="train loss (epoch)",
    )
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.set_title("Training loss")
    loss_axis.legend()
    loss_axis.grid(alpha=0.3)
    if metric_axis is not None:
        _metric_panel(metric_axis, epochs, names, primary, metrics.get("best"))
    for axis in (loss_axis, metric_axis):
        if axis is not None:  # at most four digits a tick (an offset such as 1e4 above the axis): fits the margin
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useOffset=False)
    # Fixed margins (the texts are fixed): no layout pass and no crop, each of which draws every label once
    # more (together more than half of the picture's time, docs/performance.md).
    figure.subplots_adjust(left=0.13 if metric_axis is None else 0.065, right=0.98, bottom=0.12, top=0.92, wspace=0.15)
    _save(figure, path, crop=False)
    plt.close(figure)
    return Path(path)


def _metric_panel(metric_axis, epochs, names, primary, best) -> None:
    """The validation metrics per epoch, the primary one bold, the best epoch marked."""
    markers = "osD^vP*Xph"
    for k, name in enumerate(names):
        # Metrics often coincide (f1 and mcc at 0, every metric at 1): a shrinking marker per metric keeps each visible.
        metric_axis.plot(
            [e["epoch"] for e in epochs],
            [e[name] for e in epochs],
            "-" if name == primary else "--",
            marker=markers[k % len(markers)],
            markersize=max(3.0, 9.0 - 1.5 * k),
            linewidth=2.0 if name == primary else 1.2,
            label=name + (" (primary)" if name == primary else ""),
        )
    if best:
        metric_axis.axvline(best["epoch"], color="gray", linestyle=":", label=f"best epoch ({best['epoch']})")
    metric_axis.set_xlabel("epoch")
    metric_axis.set_title(f"Validation (best by {primary})")
    metric_axis.legend()
    metric_axis.grid(alpha=0.3)


def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts with row-normalised shading (rows: true label, columns: predicted label)."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels=labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            axis.text(
                j, i, str(counts[i, j]), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black"
            )
    axis.set_title(title or "Confusion matrix")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true label")
    figure.tight_layout()  # the labels' lengths vary: a layout pass, then no crop
    _save(figure, path, crop=False)
    plt.close(figure)
    return Path(path)


def reliability_diagram(panels: Sequence[tuple[str, Sequence[dict[str, Any]]]], path: Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against mean confidence per bin (the diagonal is perfect calibration),
    one line per (name, bins) panel, and the rows in each bin below. `bins` as calibration.reliability_bins."""
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    width = None
    for index, (name, bins) in enumerate(panels):
        filled = [b for b in bins if b["count"]]
        top.plot(
            [b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", markersize=4, label=name
        )
        width = (bins[0]["upper"] - bins[0]["lower"]) / max(len(panels), 1)
        centres = [b["lower"] + width * (index + 0.5) for b in bins]
        bottom.bar(centres, [b["count"] for b in bins], width=width * 0.9, label=name)
    top.set_ylabel("accuracy in the bin")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or "Reliability diagram")
    bottom.set_xlabel("confidence (mean probability in the bin)")
    bottom.set_ylabel("rows")
    bottom.set_yscale("log")
    figure.subplots_adjust(left=0.14, right=0.97, bottom=0.09, top=0.95, hspace=0.08)  # see training_curves
    _save(figure, path, crop=False)
    plt.close(figure)
    return Path(path)


def _study_figure(draw, study, path: Path) -> Path:
    """An optuna.visualization.matplotlib drawing of `study`, saved as a PNG."""
    import warnings

    plt = _pyplot()  # the headless backend, before Optuna imports pyplot
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib drawings experimental
        axes = draw(study)
    figure = axes.figure
    try:
        _save(figure, path)
    finally:
        plt.close(figure)
    return path


def optimization_history(study, path: Path) -> Path:
    """Each trial's value and the best so far, trial by trial."""
    from optuna.visualization.matplotlib import plot_optimization_history

    return _study_figure(plot_optimization_history, study, path)


def param_importances(study, path: Path) -> Path:
    """How much each searched setting explains of the values (fANOVA on the complete trials)."""
    from optuna.visualization.matplotlib import plot_param_importances

    return _study_figure(plot_param_importances, study, path)


def suspects_per_class(
    suspects: Sequence[Sequence[int]], rows_per_class: Sequence[int], labels: Sequence[str], path: Path
) -> Path:
    """An audit's flagged rows per given label, each bar split by the label suggested instead, with the share of
    the class flagged written beside it."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(suspects)
    rows = np.asarray(rows_per_class)
    figure, axis = plt.subplots(figsize=(8, max(2.5, 0.5 * len(labels) + 1.5)))
    colours = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    left = np.zeros(len(labels))
    for j, suggested in enumerate(labels):
        if counts[:, j].any():
            axis.barh(range(len(labels)), counts[:, j], left=left, color=colours(j % colours.N), label=suggested)
            left += counts[:, j]
    for i, total in enumerate(counts.sum(axis=1)):
        share = total / rows[i] if rows[i] else 0.0
        axis.text(total, i, f"  {total} of {rows[i]} ({share:.1%})", va="center")
    axis.set_yticks(range(len(labels)), labels=labels)
    axis.invert_yaxis()
    axis.set_xlabel("flagged rows (colour: suggested label)")
    axis.set_ylabel("given label")
    axis.set_xlim(0, max(1, left.max()) * 1.5)
    axis.set_title("Suspect labels per class")
    if left.any():
        axis.legend(title="suggested", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
    return Path(path)
