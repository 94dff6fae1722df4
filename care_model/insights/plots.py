"""The insights' plots as PNG bytes, in the report's style (:mod:`care_model.report.plots`: Agg
backend, the dimension colours, a placeholder PNG that says what is missing)."""
from __future__ import annotations

from typing import Sequence

from care_model.report.plots import DIM_COLORS, _plt, _png, placeholder

MAX_TRAJECTORIES = 12


def _zoom(values, scale, pad: float = 0.3) -> tuple[float, float]:
    """Y limits around the data (inside the scale, with a margin), so small differences stay visible."""
    vals = [v for v in values if v is not None]
    if not vals:
        return scale[0] - 0.2, scale[1] + 0.2
    return max(scale[0] - 0.2, min(vals) - pad), min(scale[1] + 0.2, max(vals) + pad)


def _color(dim: str) -> str:
    return DIM_COLORS.get(dim, "#555")


def _err(e: dict) -> tuple[float, float]:
    if e.get("low") is None or e.get("value") is None:
        return 0.0, 0.0
    return e["value"] - e["low"], e["high"] - e["value"]


def profiles_plot(result: dict, title: str, *, scale=(1, 5)) -> bytes:
    """Grouped bars: counselors on x, one bar per dimension with its interval; dashed: overall means."""
    import numpy as np

    dims, overall = result["dims"], result["overall"]
    groups = [(p["counselor"], p["dims"]) for p in result["profiles"]]
    if not groups:
        groups = [("all sessions\n(no counselor ids)", overall)]
    if not any(e.get("value") is not None for _, est in groups for e in est.values()):
        return placeholder(title, "No scored session.")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(groups) + 2.5), 3.8))
    x = np.arange(len(groups))
    width = 0.8 / len(dims)
    for k, d in enumerate(dims):
        vals = [est[d]["value"] if est[d]["value"] is not None else np.nan for _, est in groups]
        errs = np.array([_err(est[d]) for _, est in groups]).T
        ax.bar(x + (k - (len(dims) - 1) / 2) * width, vals, width, yerr=errs, capsize=3, color=_color(d),
               label=d.capitalize(), alpha=0.9)
        if overall[d]["value"] is not None:
            ax.axhline(overall[d]["value"], color=_color(d), linestyle="--", linewidth=1)
    ax.set_xticks(x)
    ax.set_xticklabels([g for g, _ in groups], rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4
                       else "center", fontsize=8)
    tops = [e["high"] if e.get("high") is not None else e.get("value") for _, est in groups for e in est.values()]
    ax.set_ylim(scale[0], min(scale[1] + 0.2, max(t for t in tops if t is not None) + 0.6))
    ax.set_ylabel("mean score (scale 1-5)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(dims), loc="upper right")
    return _png(fig)


def coefficient_plot(fits: Sequence[dict], title: str) -> bytes:
    """One panel per dimension: each pattern's coefficient with its interval (intercept left out)."""
    fitted = [f for f in fits if f["terms"]]
    if not fitted:
        return placeholder(title, "; ".join(f"{f['dim']}: {f['reason']}" for f in fits) or "No fit.")
    plt = _plt()
    terms = [t["term"] for t in fitted[0]["terms"] if t["term"] != "intercept"]
    fig, axes = plt.subplots(1, len(fitted), figsize=(3.3 * len(fitted) + 1.2, 0.42 * len(terms) + 1.6),
                             squeeze=False, sharey=True)
    for ax, f in zip(axes[0], fitted):
        rows = [t for t in f["terms"] if t["term"] != "intercept"]
        ys = list(range(len(rows)))[::-1]
        for yv, t in zip(ys, rows):
            ax.plot([t["low"], t["high"]], [yv, yv], color=_color(f["dim"]), linewidth=2)
            ax.plot([t["coef"]], [yv], "o", color=_color(f["dim"]), markersize=5)
        ax.axvline(0, color="#888", linestyle="--", linewidth=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([t["term"] for t in rows], fontsize=8)
        r2 = "–" if f["r2"] is None else f"{f['r2']:.2f}"
        ax.set_title(f"{f['dim'].capitalize()} (n={f['n']}, R²={r2})", fontsize=9)
        ax.set_xlabel(f"coefficient vs {f['reference']}", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def trajectories_plot(result: dict, title: str, *, scale=(1, 5)) -> bytes:
    """One panel per dimension, one line per client across their sessions; red x: ruptures."""
    clients = result["clients"][:MAX_TRAJECTORIES]
    if not clients:
        return placeholder(title, result.get("statement") or "No client has two or more scored sessions.")
    plt = _plt()
    dims = result["dims"]
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.4), squeeze=False, sharey=True)
    lims = _zoom([s["dims"].get(d) for c in clients for s in c["sessions"] for d in dims], scale)
    for ax, d in zip(axes[0], dims):
        for c in clients:
            pts = [(i + 1, s["dims"].get(d)) for i, s in enumerate(c["sessions"]) if s["dims"].get(d) is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, linewidth=1, alpha=0.8)
            pos = {s["session_id"]: i + 1 for i, s in enumerate(c["sessions"])}
            for r in c["ruptures"]:
                if r["dim"] == d:
                    ax.plot([pos[r["to_session"]]], [r["to"]], "x", color="#c62828", markersize=9, mew=2)
        ax.set_ylim(*lims)
        ax.set_xlabel("session (in order)")
        ax.set_title(d.capitalize())
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("score")
    more = len(result["clients"]) - len(clients)
    fig.suptitle(title + (f" (first {len(clients)} clients; {more} more in the table)" if more > 0 else ""),
                 fontsize=10)
    return _png(fig)


def groups_plot(result: dict, values: dict, title: str, *, scale=(1, 5)) -> bytes:
    """Per dimension: the scores of group A and group B as box plots with the points over them.
    ``values``: dim -> (scores of A, scores of B)."""
    if not any(a or b for a, b in values.values()):
        return placeholder(title, "No scored session in either group.")
    import numpy as np

    plt = _plt()
    dims = list(values)
    fig, axes = plt.subplots(1, len(dims), figsize=(3.0 * len(dims), 3.4), squeeze=False, sharey=True)
    rng = np.random.default_rng(0)
    lims = _zoom([v for a, b in values.values() for v in list(a) + list(b)], scale)
    for ax, d in zip(axes[0], dims):
        a, b = values[d]
        ax.boxplot([a or [np.nan], b or [np.nan]], widths=0.5, showfliers=False)
        for k, vals in enumerate((a, b)):
            ax.scatter(k + 1 + rng.uniform(-0.12, 0.12, len(vals)), vals, s=10, alpha=0.5, color=_color(d))
        auc = result["dims"][d]["auc"]["value"]
        ax.set_xticks([1, 2])
        ax.set_xticklabels([f"{result['a']}\n(n={len(a)})", f"{result['b']}\n(n={len(b)})"], fontsize=8)
        ax.set_title(f"{d.capitalize()} (AUC {'–' if auc is None else f'{auc:.2f}'})", fontsize=9)
        ax.set_ylim(*lims)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("score (y axis zoomed to the data)")
    fig.suptitle(title, fontsize=10)
    return _png(fig)
