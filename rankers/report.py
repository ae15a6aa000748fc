"""Render a `rankers.checks.CheckReport`: a rich table for the terminal, Markdown for a file.

Both show the same rows: one per check (the MFT, then each invariance transform) with the model's
pass rate and Wilson interval and, when there is a baseline, the baseline's, the discordant cases
(``+/-``: cases only the model passes / only the baseline passes), McNemar's exact p-value and the
gate's judgement; then retrieval quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.table import Table

    from rankers.checks import CheckReport, CheckResult, ModelInfo, PassRate, RetrievalQuality

__all__ = ["REPORT_FILE", "render_table", "to_markdown", "write_markdown"]

REPORT_FILE: Final = "report.md"
"""The name of the Markdown report inside the output directory."""

_MEASURES: Final = ("recall@1", "recall@10", "precision@10")


def _rate(rate: PassRate | None) -> tuple[str, str]:
    if rate is None:
        return "-", "-"
    return f"{rate.rate:.3f}", f"{rate.low:.3f}-{rate.high:.3f}"


def _paired(result: CheckResult) -> tuple[str, str]:
    if result.comparison is None:
        return "-", "-"
    c = result.comparison
    return f"+{c.model_only}/-{c.baseline_only}", f"{c.p_value:.2g}"


def _retrieval(quality: RetrievalQuality | None) -> tuple[str, str, str]:
    if quality is None:
        return "-", "-", "-"
    return (
        f"{quality.recall_at_1:.3f}",
        f"{quality.recall_at_10:.3f}",
        f"{quality.precision_at_10:.3f}",
    )


def _title(report: CheckReport) -> str:
    config = report.config
    versus = f" vs {report.baseline.name}" if report.baseline else ""
    style = config.anchor_style or "any style"
    return (
        f"{report.model.name}{versus} on {report.corpus}: {len(report.cases)} cases, "
        f"{config.distractors} distractors, anchors {style}, seed {config.seed}, "
        f"threshold {config.threshold:.2f}"
    )


def _describe(model: ModelInfo) -> str:
    return f"`{model.name}` version {model.version}, {model.dim}-d, sha256 {model.sha256[:12]}"


def _headers(report: CheckReport) -> tuple[str, ...]:
    ci = f"{report.config.confidence:.0%} CI"
    if report.baseline is None:
        return ("check", report.model.name, ci, "gate")
    return ("check", report.model.name, ci, report.baseline.name, ci, "+/-", "McNemar p", "gate")


def _rows(report: CheckReport) -> list[tuple[str, ...]]:
    passed = {d.check: d.passed for d in report.verdict.decisions}
    rows = []
    for result in report.results:
        compared = () if report.baseline is None else (*_rate(result.baseline), *_paired(result))
        gate = "pass" if passed[result.check] else "FAIL"
        rows.append((result.check, *_rate(result.model), *compared, gate))
    return rows


def _retrieval_rows(report: CheckReport) -> list[tuple[str, ...]]:
    if report.model_retrieval is None:
        return []
    mine = _retrieval(report.model_retrieval)
    if report.baseline is None:
        return [(label, value) for label, value in zip(_MEASURES, mine, strict=True)]
    theirs = _retrieval(report.baseline_retrieval)
    return [(m, a, b) for m, a, b in zip(_MEASURES, mine, theirs, strict=True)]


def render_table(report: CheckReport) -> Table:
    """The pass rates and retrieval quality as a rich table, the verdict in its caption."""
    from rich import box
    from rich.table import Table

    verdict = "PASSED" if report.verdict.passed else "FAILED"
    table = Table(
        title=_title(report),
        caption=f"gate {verdict}: {report.verdict.reason}",
        box=box.SIMPLE_HEAD,
    )
    headers = _headers(report)
    for i, header in enumerate(headers):
        left = i in (0, len(headers) - 1)
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
    for row in _rows(report):
        table.add_row(*row, style=None if row[-1] == "pass" else "red")
    retrieval = _retrieval_rows(report)
    if retrieval:
        table.add_section()
        for measure, *values in retrieval:
            # Line the values up under the pass-rate columns of their model.
            cells = [""] * len(headers)
            cells[0], cells[1] = measure, values[0]
            if len(values) > 1:
                cells[3] = values[1]
            table.add_row(*cells)
    return table


def to_markdown(report: CheckReport) -> str:
    """The report as a Markdown document."""
    config, model = report.config, report.model
    verdict = "PASSED" if report.verdict.passed else "FAILED"
    headers = _headers(report)
    lines = [
        f"# Embedding checks: {model.name}",
        "",
        f"**Gate {verdict}**: {report.verdict.reason}.",
        "",
        f"- model: {_describe(model)}",
    ]
    if report.baseline is not None:
        lines.append(f"- baseline: {_describe(report.baseline)}")
    lines += [
        f"- corpus: `{report.corpus}`; {len(report.cases)} cases of 1 same-concept image and "
        f"{config.distractors} other-concept images, anchors {config.anchor_style or 'any style'}, "
        f"seed {config.seed}",
        f"- gate: every pass rate >= {config.threshold:.2f}"
        + (
            f" and none significantly below the baseline's (McNemar exact p < {config.alpha:g})"
            if report.baseline is not None
            else ""
        ),
        f"- intervals: {config.confidence:.0%} Wilson"
        + (
            "; +/-: cases only the model passes / only the baseline passes"
            if report.baseline
            else ""
        ),
        "",
        "## Minimum functional test and invariance",
        "",
        *_markdown_table(headers, _rows(report), text=(0, len(headers) - 1)),
    ]
    retrieval = _retrieval_rows(report)
    if retrieval and report.model_retrieval is not None:
        names = (model.name,) if report.baseline is None else (model.name, report.baseline.name)
        lines += [
            "",
            "## Retrieval quality",
            "",
            f"Exact cosine search across styles, {report.model_retrieval.queries} queries. "
            "Recall@k: share of the query's same-concept images in the top k. "
            "Precision@10: share of the top 10 with the query's concept or subcategory.",
            "",
            *_markdown_table(("measure", *names), retrieval),
        ]
    return "\n".join(lines) + "\n"


def _markdown_table(
    headers: tuple[str, ...], rows: list[tuple[str, ...]], *, text: tuple[int, ...] = (0,)
) -> list[str]:
    """A Markdown table; the `text` columns align left, the others (numbers) right."""
    align = ["---" if i in text else "--:" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def write_markdown(report: CheckReport, directory: Path) -> Path:
    """Write `report` as ``report.md`` in `directory` (created if needed); the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / REPORT_FILE
    path.write_text(to_markdown(report), encoding="utf-8")
    return path
