"""The report's plots as PNG bytes (matplotlib, Agg backend: no display, no network).

* :func:`dimension_scatter` -- predicted against self-reported dimension means, one panel per
  dimension, with the identity line;
* :func:`calibration_plot` -- the expected (probability-weighted) item score, binned, against
  the client's mean self-reported item score in each bin, with the identity line and bin sizes;
* :func:`item_mae_plot` -- mean absolute error per item against the client's self-report;
* :func:`loss_plot` -- training (and validation) loss against the step, on numeric axes.

Each takes plain numbers and returns PNG bytes, or a placeholder PNG that says what is missing.
"""
from __future__ import annotations

import io
from typing import Mapping, Sequence

DIM_COLORS = {"goal": "#1f77b4", "task": "#2ca02c", "bond": "#d62728"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def placeholder(title: str, message: str, size=(6.4, 3.0)) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=size)
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, color="#555")
    return _png(fig)


def dimension_scatter(points: Mapping[str, Sequence[tuple[float, float]]], title: str, *, scale=(1, 5)) -> bytes:
    """``points``: dimension -> [(predicted mean, self-reported mean)] (one point per session)."""
    if not any(points.values()):
        return placeholder(title, "No session has both a complete prediction and the client's self-report.")
    plt = _plt()
    dims = list(points)
    fig, axes = plt.subplots(1, len(dims), figsize=(3.4 * len(dims), 3.5), squeeze=False)
    lo, hi = scale[0] - 0.2, scale[1] + 0.2
    for ax, dim in zip(axes[0], dims):
        pts = points[dim]
        ax.plot([lo, hi], [lo, hi], color="#888", linestyle="--", linewidth=1, label="identity")
        if pts:
            ax.scatter([p[1] for p in pts], [p[0] for p in pts], s=22, alpha=0.75,
                       color=DIM_COLORS.get(dim, "#333"), edgecolor="white", linewidth=0.5)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_title(f"{dim.capitalize()} (n={len(pts)})")
        ax.set_xlabel("self-reported (client)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("predicted")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    return _png(fig)


def calibration_plot(pairs: Sequence[tuple[float, float]], title: str, *, bins: int = 8, scale=(1, 5)) -> bytes:
    """``pairs``: (expected score, self-reported item score) per item. Equal-width bins over the scale."""
    import numpy as np

    if not pairs:
        return placeholder(title, "No expected scores with a client self-report for the same item.")
    plt = _plt()
    x = np.array([p[0] for p in pairs], float)
    y = np.array([p[1] for p in pairs], float)
    edges = np.linspace(scale[0], scale[1], bins + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot(scale, scale, color="#888", linestyle="--", linewidth=1, label="perfect calibration")
    mx, my, n = [], [], []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            mx.append(x[sel].mean())
            my.append(y[sel].mean())
            n.append(int(sel.sum()))
    ax.plot(mx, my, marker="o", color="#1f77b4", label="binned items")
    for a, b, k in zip(mx, my, n):
        ax.annotate(str(k), (a, b), textcoords="offset points", xytext=(4, -10), fontsize=7, color="#555")
    ax.set_xlim(scale[0] - 0.1, scale[1] + 0.1)
    ax.set_ylim(scale[0] - 0.1, scale[1] + 0.1)
    ax.set_xlabel("expected score (mean of the bin)")
    ax.set_ylabel("self-reported item score (mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def item_mae_plot(mae: Mapping[int, float | None], dims: Mapping[int, str], title: str) -> bytes:
    """``mae``: item -> mean absolute error of the predicted item score; ``dims``: item -> dimension."""
    items = sorted(k for k, v in mae.items() if v is not None)
    if not items:
        return placeholder(title, "No parsed item score with a client self-report for the same item.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    ax.bar([str(i) for i in items], [mae[i] for i in items],
           color=[DIM_COLORS.get(dims.get(i, ""), "#555") for i in items])
    from matplotlib.patches import Patch

    handles = [Patch(color=color, label=dim.capitalize()) for dim, color in DIM_COLORS.items() if dim in dims.values()]
    ax.set_xlabel("WAI-SR item")
    ax.set_ylabel("mean absolute error")
    ax.set_ylim(0, max(4.0, max(mae[i] for i in items) * 1.1))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=8)
    return _png(fig)


def loss_plot(series: Mapping[str, Sequence[tuple[float, float]]], title: str) -> bytes:
    """The PNG of :func:`loss_figure`."""
    series = {k: [(float(s), float(v)) for s, v in pts if v is not None] for k, pts in series.items()}
    if not any(series.values()):
        return placeholder(title, "No training steps recorded yet.")
    return _png(loss_figure(series, title))


def loss_figure(series: Mapping[str, Sequence[tuple[float, float]]], title: str):
    """``series``: name -> [(step, loss)]; numeric axes (steps as numbers, losses as numbers). A series of at most 10
    points is drawn with large markers, of at most 5 with its values written beside them, of at most 3 as points
    without a joining line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for name, pts in series.items():
        if not pts:
            continue
        pts = sorted(pts)
        # few points: large markers (two validation points are two measurements, not a line), values written beside
        size = 7 if len(pts) <= 10 else 4 if len(pts) < 30 else 0
        # up to 3 points are separate measurements: no line joins them (it would suggest values in between)
        style = "none" if len(pts) <= 3 else "--" if "validation" in name else "-"
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if size else None, markersize=size,
                        linestyle=style, label=f"{name} ({len(pts)} point{'s' if len(pts) != 1 else ''})")
        if len(pts) <= 5:
            for x, y in pts:
                ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7,
                            color=line.get_color())
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens, cross-entropy)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
