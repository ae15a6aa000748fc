"""The report's figures, drawn with matplotlib's object API onto the Agg canvas.

Each function draws one PNG from a `Report` and returns its file name (relative to the HTML
that references it), or None when the report has nothing to show for it. Figures are built
from `matplotlib.figure.Figure` without pyplot, so nothing here touches matplotlib's global
state (no backend switch, no rcParams change, no figure registry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from analysis.ab import Metric
from analysis.power import POWER_LEVELS
from analysis.report import HIGHER_IS_BETTER, Report, SampleSize
from analysis.schema import Design

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "clicks_by_position",
    "forest",
    "power_curves",
    "sequential",
    "team_balance",
]

DPI: Final = 110
INK: Final = "#1f2933"
MUTED: Final = "#9aa5b1"
GRID: Final = "#e4e7eb"
# Interleaving in cool colours, A/B metrics in warm ones, so a glance tells the designs apart.
METHOD_COLOURS: Final = {
    "team_draft": "#1769aa",
    "team_draft_multileave": "#2f9e8f",
    "probabilistic": "#6a4fb3",
    "optimized": "#0b8bd6",
    "balanced": "#a07d16",
}
METRIC_COLOURS: Final = {
    "ctr": "#d9480f",
    "abandonment": "#f08c00",
    "clicks_per_query": "#c2255c",
    "reciprocal_rank": "#e8590c",
    "success": "#a61e4d",
}
MARKERS: Final = {
    "ctr": "s",
    "abandonment": "v",
    "clicks_per_query": "D",
    "reciprocal_rank": "^",
    "success": "P",
}
GROUP_COLOURS: Final = ("#1769aa", "#d9480f", "#2f9e8f", "#6a4fb3", "#c2255c", "#f08c00")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)
    ax.tick_params(colors=INK, labelsize=9)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def _save(fig: Figure, path: Path) -> str:
    fig.savefig(path, format="png", dpi=DPI, facecolor="white")
    return path.name


def _size_colour(size: SampleSize) -> str:
    if size.design is Design.INTERLEAVING:
        return METHOD_COLOURS.get(size.test, "#1769aa")
    return METRIC_COLOURS.get(size.test, "#d9480f")


def _pair_key(a: str, b: str) -> frozenset[str]:
    return frozenset((a, b))


def _pair_order(report: Report) -> dict[frozenset[str], int]:
    """Ranker pairs in the order the log first designs them (A/B or interleaving)."""
    order: dict[frozenset[str], int] = {}
    for result in report.interleaving:
        for pair in result.pairs:
            order.setdefault(_pair_key(pair.a, pair.b), len(order))
    for ab in report.ab:
        for c in ab.comparisons:
            order.setdefault(_pair_key(c.control, c.treatment), len(order))
    return order


def forest(report: Report, path: Path) -> str | None:
    """Preference of every interleaving pair with its interval; A/B effects beside it.

    Rows are grouped by ranker pair, so the methods' answers on one pair sit together.
    """
    order = _pair_order(report)
    counts: dict[tuple[frozenset[str], str], int] = {}
    for result in report.interleaving:
        for pair in result.pairs:
            key = (_pair_key(pair.a, pair.b), result.method)
            counts[key] = counts.get(key, 0) + 1
    ranked: list[tuple[int, int, tuple[str, float, float, float, bool, str]]] = []
    for result in report.interleaving:
        for pair in result.pairs:
            p = pair.preference
            key = (_pair_key(p.a, p.b), result.method)
            which = f" ({result.label})" if counts[key] > 1 else ""
            ranked.append(
                (
                    order[key[0]],
                    len(ranked),
                    (
                        f"{p.a} vs {p.b}\n{result.method}{which}",
                        p.delta,
                        p.ci_low,
                        p.ci_high,
                        pair.winner is not None,
                        METHOD_COLOURS.get(result.method, "#1769aa"),
                    ),
                )
            )
    rows = [row for *_, row in sorted(ranked, key=lambda r: (r[0], r[1]))]
    lifts: list[tuple[str, float, float, float, bool, str]] = []
    for ab in report.ab:
        for c in ab.comparisons:
            if not c.control_mean or not math.isfinite(c.ci_low):
                continue
            # Oriented so that right is better for the treatment: abandonment is mirrored.
            sign = 100 / c.control_mean * (1 if HIGHER_IS_BETTER[Metric(c.metric)] else -1)
            low, high = sorted((sign * c.ci_low, sign * c.ci_high))
            name = c.metric if HIGHER_IS_BETTER[Metric(c.metric)] else f"{c.metric} (reduction)"
            lifts.append(
                (
                    f"{c.treatment} vs {c.control}\n{name}",
                    sign * c.effect,
                    low,
                    high,
                    c.significant,
                    METRIC_COLOURS.get(c.metric, "#d9480f"),
                )
            )
    if not rows and not lifts:
        return None
    titles = (
        (rows, "interleaving: δ_AB (a over b)"),
        (lifts, "A/B: improvement of treatment, % of control"),
    )
    panels = [(x, t) for x, t in titles if x]
    height = 1.0 + 0.34 * max(len(x) for x, _ in panels)
    fig = _figure(5.8 * len(panels), height)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, title) in zip(axes, panels, strict=True):
        _style(ax)
        y = np.arange(len(data))[::-1]
        for yi, (_, est, low, high, decided, colour) in zip(y, data, strict=True):
            tint = colour if decided else MUTED
            ax.plot([low, high], [yi, yi], color=tint, linewidth=2.2, solid_capstyle="round")
            ax.plot([est], [yi], "o", color=tint, markersize=6, markeredgecolor="white")
        ax.axvline(0, color=INK, linewidth=0.9)
        ax.set_yticks(y, [label for label, *_ in data], fontsize=7.5)
        ax.set_title(title, fontsize=10.5, color=INK, loc="left")
        ax.grid(False, axis="y")
    return _save(fig, path)


def _analytic_power(queries: Sequence[float] | np.ndarray, q80: float, alpha: float) -> np.ndarray:
    """Normal-approximation power at `queries`, scaled from the analytic 80% size."""
    from scipy import stats

    za = stats.norm.ppf(1 - alpha / 2)
    zb = stats.norm.ppf(POWER_LEVELS[0])
    q = np.asarray(queries, dtype=np.float64)
    return np.asarray(stats.norm.cdf((za + zb) * np.sqrt(q / q80) - za), dtype=np.float64)


def _short_labels(sizes: Sequence[SampleSize]) -> list[str]:
    """ "team_draft", "A/B ctr": with the experiment only where that alone is ambiguous."""
    seen: dict[str, int] = {}
    for size in sizes:
        seen[size.label] = seen.get(size.label, 0) + 1
    return [s.label if seen[s.label] == 1 else f"{s.label} ({s.experiment})" for s in sizes]


def power_curves(report: Report, path: Path) -> str | None:
    """Power against queries (log scale), every A/B metric against interleaving, per pair.

    One panel per ranker pair that both designs tested (or, without any such pair, per
    interleaved pair); pairs only a multileave covers are left to the tables.
    """
    from matplotlib.ticker import NullFormatter

    pairs: dict[frozenset[str], list[SampleSize]] = {}
    for size in report.sample_sizes:
        if math.isfinite(size.analytic_users[0]):
            pairs.setdefault(_pair_key(size.a, size.b), []).append(size)
    both = {
        k: v for k, v in pairs.items() if {s.design for s in v} == {Design.AB, Design.INTERLEAVING}
    }
    two_ranker = {
        _pair_key(*r.spec.rankers) for r in report.interleaving if len(r.spec.rankers) == 2
    }
    if both:
        pairs = both
    elif two_ranker & set(pairs):
        pairs = {k: v for k, v in pairs.items() if k in two_ranker}
    if not pairs:
        return None
    cols = min(2, len(pairs))
    rows = math.ceil(len(pairs) / cols)
    fig = _figure(6.6 * cols, 3.6 * rows + 0.2)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)
    for ax, (pair, sizes) in zip(axes, pairs.items(), strict=False):
        _style(ax)
        finite = [s.analytic_queries[1] for s in sizes if math.isfinite(s.analytic_queries[1])]
        starts = [
            s.curve.users[0] * s.curve.impressions_per_user
            if s.curve is not None
            else s.analytic_queries[0] / 8
            for s in sizes
        ]
        lo = max(1.0, min(starts))
        hi = max(finite) * 3 if finite else lo * 100
        for size, label in zip(sizes, _short_labels(sizes), strict=True):
            colour = _size_colour(size)
            width = 2.4 if size.design is Design.INTERLEAVING else 1.5
            if size.curve is not None:
                x = np.asarray(size.curve.users, dtype=np.float64) * size.curve.impressions_per_user
                ax.plot(
                    x,
                    size.curve.power,
                    "-",
                    marker=MARKERS.get(size.test, "o"),
                    color=colour,
                    linewidth=width,
                    markersize=3.6,
                    label=label,
                )
                hi = max(hi, float(x[-1]))
            else:
                x = np.geomspace(lo, hi, 60)
                ax.plot(
                    x,
                    _analytic_power(x, size.analytic_queries[0], report.alpha),
                    "--",
                    color=colour,
                    linewidth=width,
                    label=f"{label} (analytic)",
                )
        for level in POWER_LEVELS:
            ax.axhline(level, color=INK, linewidth=0.8, linestyle=":")
            ax.text(lo, level + 0.012, f"{level:.0%}", fontsize=8, color=INK)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(lo, hi)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("queries (impressions) per experiment", fontsize=9, color=INK)
        ax.set_ylabel("power, right direction", fontsize=9, color=INK)
        a, b = sorted(pair)
        ax.set_title(f"{a} vs {b}", fontsize=10, color=INK, loc="left")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _save(fig, path)


def _grid_axes(fig: Figure, n: int, cols: int) -> list[Any]:
    rows = math.ceil(n / cols)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def clicks_by_position(report: Report, path: Path) -> str | None:
    """Click-through rate by rank for each interleaving team and each A/B arm."""
    panels = [
        (f"{r.label} · {r.method}", r.clicks_by_position)
        for r in report.interleaving
        if r.clicks_by_position
    ] + [(f"{r.label} · A/B", r.clicks_by_position) for r in report.ab if r.clicks_by_position]
    if not panels:
        return None
    cols = min(3, len(panels))
    fig = _figure(4.3 * cols, 3.0 * math.ceil(len(panels) / cols))
    for ax, (title, groups) in zip(_grid_axes(fig, len(panels), cols), panels, strict=True):
        _style(ax)
        for i, group in enumerate(groups):
            rates = np.asarray(group.rates, dtype=np.float64)
            ax.plot(
                np.arange(1, rates.size + 1),
                rates,
                "-o",
                markersize=3.5,
                linewidth=1.8,
                color=GROUP_COLOURS[i % len(GROUP_COLOURS)],
                label=group.group,
            )
        ax.set_title(title, fontsize=10, color=INK, loc="left")
        ax.set_xlabel("rank", fontsize=9, color=INK)
        ax.set_ylabel("click-through rate", fontsize=9, color=INK)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def team_balance(report: Report, path: Path) -> str | None:
    """Share of each position held by each team, against the fair share."""
    panels = [r for r in report.interleaving if r.balance.positions]
    if not panels:
        return None
    cols = min(3, len(panels))
    fig = _figure(4.3 * cols, 2.8 * math.ceil(len(panels) / cols))
    for ax, result in zip(_grid_axes(fig, len(panels), cols), panels, strict=True):
        _style(ax)
        positions = result.balance.positions
        ranks = np.array([b.position + 1 for b in positions])
        counts = np.array([b.counts for b in positions], dtype=np.float64)
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        bottom = np.zeros(len(positions))
        for t, name in enumerate(result.spec.rankers):
            ax.bar(
                ranks,
                shares[:, t],
                bottom=bottom,
                width=0.8,
                label=name,
                color=GROUP_COLOURS[t % len(GROUP_COLOURS)],
                alpha=0.85,
            )
            bottom += shares[:, t]
        for k in range(1, len(result.spec.rankers)):
            ax.axhline(k / len(result.spec.rankers), color=INK, linewidth=0.9, linestyle="--")
        flagged = "  (unbalanced)" if result.balance.unbalanced else ""
        ax.set_title(
            f"{result.label} · {result.method}{flagged}", fontsize=10, color=INK, loc="left"
        )
        ax.set_xlabel("rank", fontsize=9, color=INK)
        ax.set_ylabel("share of impressions", fontsize=9, color=INK)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, frameon=False, loc="upper right")
    return _save(fig, path)


def sequential(report: Report, path: Path) -> str | None:
    """The always-valid p-value after each daily look, one panel per ranker pair.

    Pairs that only a multileave covers are left out (their paths are in the table).
    """
    from matplotlib.ticker import MaxNLocator

    two_ranker = {
        _pair_key(*r.spec.rankers) for r in report.interleaving if len(r.spec.rankers) == 2
    }
    panels: dict[frozenset[str], list[tuple[str, Any, str]]] = {}
    for r in report.interleaving:
        for p in r.pairs:
            key = _pair_key(p.a, p.b)
            if p.sequential.p_values and (key in two_ranker or not two_ranker):
                panels.setdefault(key, []).append(
                    (r.method, p, METHOD_COLOURS.get(r.method, "#1769aa"))
                )
    if not panels:
        return None
    values = [v for lines in panels.values() for _, p, _ in lines for v in p.sequential.p_values]
    smallest = min(values)
    # Very small p-values are drawn at a floor, so the scale stays readable.
    floor = max(smallest, 1e-16) if smallest > 0 else 1e-16
    cols = min(2, len(panels))
    fig = _figure(6.6 * cols, 2.9 * math.ceil(len(panels) / cols) + 0.3)
    for ax, (pair, lines) in zip(_grid_axes(fig, len(panels), cols), panels.items(), strict=True):
        _style(ax)
        for method, p, colour in lines:
            days = np.arange(1, len(p.sequential.p_values) + 1)
            values_ = np.maximum(np.asarray(p.sequential.p_values, dtype=np.float64), floor)
            ax.plot(days, values_, "-o", color=colour, markersize=3, linewidth=1.8, label=method)
        ax.axhline(report.alpha, color=INK, linewidth=0.9, linestyle=":")
        ax.text(1, report.alpha * 1.4, f"α = {report.alpha:g}", fontsize=8, color=INK)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.set_ylim(floor * 0.3, 2.0)
        ax.set_xlabel("day of the experiment", fontsize=9, color=INK)
        ax.set_ylabel("mSPRT p-value", fontsize=9, color=INK)
        a, b = sorted(pair)
        ax.set_title(f"{a} vs {b}", fontsize=10, color=INK, loc="left")
        ax.legend(fontsize=7.5, frameon=False, loc="lower left")
    if smallest < floor:
        fig.suptitle(
            "p-values below 1e-16 are drawn at 1e-16", fontsize=8, color=MUTED, x=0.99, ha="right"
        )
    return _save(fig, path)
