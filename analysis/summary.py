"""The report's terminal summary: the winner, how sure, what each design needed, what to watch.

At most `MAX_LINES` lines of plain text (no colour codes), so it reads the same in a terminal,
a CI log or a test.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

from analysis.power import POWER_LEVELS
from analysis.report import Alert, QueriesRatio, Report, SampleSize

__all__ = [
    "MAX_LINES",
    "summary",
]

MAX_LINES: Final = 25
_MAX_ALERTS: Final = 6


def _p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _interval(low: float, high: float) -> str:
    """ "[low, high]", or "[n/a]" where there is none (fewer than two users)."""
    if math.isnan(low) or math.isnan(high):
        return "[n/a]"
    return f"[{low:+.4f}, {high:+.4f}]"


def _queries(size: SampleSize, level: int) -> str:
    value, _ = size.queries(level)
    return f"{value:,.0f}" if math.isfinite(value) else "unbounded"


def _ratio(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x"


def _clip(text: str, width: int = 110) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _alert_lines(report: Report) -> list[str]:
    """Severe alerts one by one; milder ones counted by kind."""
    if not report.alerts:
        return ["Warnings: none"]
    lines = [f"Warnings ({len(report.alerts)}):"]
    severe = [a for a in report.alerts if a.severe]
    for alert in severe[:_MAX_ALERTS]:
        lines.append(_clip(f"  ! {_about(alert)}", 160))
    if len(severe) > _MAX_ALERTS:
        lines.append(f"  ! ... and {len(severe) - _MAX_ALERTS} more")
    kinds: dict[str, list[str]] = {}
    for alert in report.alerts:
        if not alert.severe:
            kinds.setdefault(alert.kind.replace("_", " "), []).append(alert.experiment)
    for kind, experiments in kinds.items():
        if len(experiments) == 1:
            (only,) = (a for a in report.alerts if a.kind.replace("_", " ") == kind)
            lines.append(_clip(f"  - {_about(only)}", 160))
        else:
            names = ", ".join(dict.fromkeys(experiments))
            lines.append(_clip(f"  - {kind}: {len(experiments)} ({names})", 160))
    return lines


def _about(alert: Alert) -> str:
    """ "experiment: message", or the message alone for an alert about the whole log."""
    return f"{alert.experiment}: {alert.message}" if alert.experiment else alert.message


def _pair_ratio_lines(report: Report) -> list[str]:
    """One line per ranker pair: A/B : team-draft queries at 80% power, on click-through and
    on the most sensitive A/B metric, so the spread of the ratio across pairs is visible."""
    pairs: dict[frozenset[str], list[QueriesRatio]] = {}
    for r in report.ratios:
        if r.interleaving.test == "team_draft":
            pairs.setdefault(frozenset((r.ab.a, r.ab.b)), []).append(r)
    if not pairs:
        return []
    lines = ["A/B : team-draft queries at 80% power, per pair (ctr; most sensitive A/B metric):"]
    for ratios in pairs.values():
        first = ratios[0]
        needed = first.interleaving.analytic_users[0]
        if not math.isfinite(needed) or needed > first.interleaving.users:
            # An effect the experiment could not resolve gives a meaningless ratio.
            lines.append(f"  {first.ab.a} vs {first.ab.b}: interleaving underpowered, no ratio")
            continue
        ctr = next((r for r in ratios if r.ab.test == "ctr"), None)
        best = min(ratios, key=lambda r: r.ratio(0)[0])
        ctr_text = _ratio(ctr.ratio(0)[0]) if ctr is not None else "n/a"
        lines.append(
            _clip(
                f"  {first.ab.a} vs {first.ab.b}: {ctr_text}; "
                f"{_ratio(best.ratio(0)[0])} ({best.ab.test})",
                160,
            )
        )
    return lines


def summary(report: Report, *, html_path: str | os.PathLike[str] | None = None) -> str:
    """The report in at most 25 lines: winner, p-value, queries per design, ratio, warnings.

    Args:
        report: The report.
        html_path: Where its HTML was written, to name on the last line.
    """
    lv = [f"{100 * x:g}%" for x in POWER_LEVELS]
    impressions = sum(r.impressions for r in report.interleaving) + sum(
        r.impressions for r in report.ab
    )
    lines = [
        f"Braid report: {report.logdir} ({len(report.interleaving)} interleaving, "
        f"{len(report.ab)} A/B experiments; {impressions:,} impressions)"
    ]
    h = report.headline
    if h is None:
        lines.append(
            "No interleaving experiment: no preference or ratio (A/B results in the HTML)."
        )
    else:
        verdict = (
            f"Winner: {h.winner} over {h.b if h.winner == h.a else h.a}"
            if h.winner
            else f"No significant winner between {h.a} and {h.b}"
        )
        lines.append(
            f"{verdict} ({h.method}, {h.experiment}): delta {h.delta:+.4f} "
            f"{_interval(*h.ci)}, p-value {_p(h.p_value)} (alpha {report.alpha:g})"
        )
        lines.append(f"Queries needed for {lv[0]} power ({lv[1]}):")
        il = h.interleaving
        lines.append(
            f"  {h.method + ' interleaving':<38} {_queries(il, 0):>14} ({_queries(il, 1)})"
            f"  {il.queries(0)[1]}"
        )
        if h.ab is not None and h.ratio is not None:
            ab = h.ab
            lines.append(
                f"  {'A/B ' + ab.test + ' (most sensitive)':<38} {_queries(ab, 0):>14} "
                f"({_queries(ab, 1)})  {ab.queries(0)[1]}"
            )
            (r80, _), (r95, _) = h.ratio
            lines.append(f"  {'ratio A/B : interleaving':<38} {_ratio(r80):>14} ({_ratio(r95)})")
        elif h.paired:
            lines.append("  no A/B metric on this pair moves towards the better ranker: no ratio")
        else:
            lines.append("  no A/B experiment compares these two rankers: no ratio")
        if report.truth is not None and h.truth is not None and h.winner is not None:
            agrees = "agrees" if h.winner == h.truth else "DISAGREES"
            lines.append(f"Truth ({report.truth.metric}): {h.truth} is better; the winner {agrees}")
    lines.extend(_pair_ratio_lines(report))
    if report.truth is not None and report.agreement:
        lines.append(f"Agreement with the truth ({report.truth.metric}), right / pairs:")
        for design, rows in (
            ("interleaving", [a for a in report.agreement if not a.design.startswith("A/B ")]),
            ("A/B", [a for a in report.agreement if a.design.startswith("A/B ")]),
        ):
            if rows:
                parts = [
                    f"{a.design.removeprefix('A/B ')} {a.agree}/{a.total}"
                    + (f" ({a.wrong} wrong)" if a.wrong else "")
                    for a in rows
                ]
                lines.append(_clip(f"  {design}: " + ", ".join(parts), 160))
    lines.extend(_alert_lines(report))
    if html_path is None:
        return "\n".join(lines[:MAX_LINES])
    last = f"Report: {Path(html_path)} (built in {report.seconds:.1f} s)"
    return "\n".join([*lines[: MAX_LINES - 1], last])
