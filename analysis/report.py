"""The interleaving-versus-A/B report: every experiment of a log directory, analysed and compared.

`build_report` reads a log directory (simulated or served; see `analysis.schema`) and returns
a `Report` of frozen records; `write_html` renders it as `index.html` with PNG figures beside
it; `analysis.summary.summary` renders a short terminal summary. `run_report` does all three
for `python -m analysis report`.

What a report holds:

* Interleaving, per experiment version: the preference of every ranker pair (user-clustered
  bootstrap interval, clustered t-test that decides the winner, sign test), Holm-adjusted
  across the pairs of a multileave; an always-valid mSPRT p-value path with one look per UTC
  day; first-pick and per-position team balance; clicks by position for each team.
* A/B, per experiment version: every `analysis.ab.Metric` of each treatment arm against the
  control arm (the first ranker of the spec), the sample-ratio-mismatch check against the
  designed weights, clicks by position for each arm.
* Sample sizes: users and queries needed for 80% and 95% power, analytic (statsmodels, at the
  observed effect) and empirical (power curves from simulated experiments drawn from the
  observed users), for the interleaving t-test and for each A/B metric; the ratio A/B :
  interleaving of queries needed for each A/B and interleaving experiment on the same pair.
* Agreement with the truth when the log has `truth.json` (simulated logs): whether each
  design's significant winner is the truly better ranker, counting "no decision" honestly.
* Alerts: balanced interleaving's known bias, designs that disagree, sample-ratio mismatch,
  unbalanced teams, too few users, underpowered experiments, excluded impressions.

Cost: every experiment streams through polars lazy scans; what stays in memory is the
per-impression outcomes (from `analysis.outcomes`) with their day, and per-user totals.
Users are grouped by sorting on a hash of their id, the sequential looks come from one pass
over blocks of a (users x days) matrix of running sums, team balance is counted from the
distinct team patterns of the pages (a few dozen for team-draft), clicks by position are
counted on a hash sample of at most `CLICK_SAMPLE` impressions, and each empirical power
curve draws at most `POWER_DRAWS` simulated users. Every figure is reproducible from `seed`
(per-task generators derived by `hashlib.blake2b`).

Errors: everything that stops a report (a missing or empty log directory, no experiments,
an unreadable file) raises `ReportError`, whose message is one line.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from itertools import combinations
from pathlib import Path
from typing import Final, Literal

import numpy as np
import polars as pl

from analysis.ab import (
    SRM_THRESHOLD,
    Metric,
    MetricComparison,
    SampleRatio,
    compare_moments,
    sample_ratio_mismatch,
    user_metrics,
)
from analysis.balance import FirstPickBalance, PositionBalance, TeamBalance
from analysis.moments import Moments
from analysis.multiple import holm
from analysis.outcomes import ab_outcomes, interleaving_outcomes
from analysis.power import (
    POWER_LEVELS,
    PowerCurve,
    ab_power_curve,
    ab_users_per_arm,
    interleaving_power_curve,
    interleaving_users,
    size_grid,
)
from analysis.preference import Preference, UserTotals, preference_from_totals
from analysis.schema import (
    Design,
    ExperimentSpec,
    Kind,
    read_experiments,
    scan,
    uncompacted_segments,
)
from analysis.sequential import SequentialPath, mixing_rho, msprt

__all__ = [
    "BALANCE_ALPHA",
    "CLICK_SAMPLE",
    "HIGHER_IS_BETTER",
    "MIN_POWER_EXPERIMENTS",
    "MIN_USERS",
    "POWER_DRAWS",
    "POWER_EXPERIMENTS",
    "TEAM_BALANCED_METHODS",
    "ABResult",
    "Agreement",
    "Alert",
    "AlertKind",
    "Headline",
    "InterleavingResult",
    "PairResult",
    "PositionClicks",
    "QueriesRatio",
    "Report",
    "ReportError",
    "SampleSize",
    "Truth",
    "Verdict",
    "build_report",
    "read_truth",
    "run_report",
    "summary",
    "write_html",
]

logger = logging.getLogger(__name__)

# Balance is checked on every experiment, so a false alarm must be rare (as analysis.balance).
BALANCE_ALPHA: Final = 0.001
# Below this many users (per arm for A/B), tests that rely on the CLT over users are shaky.
MIN_USERS: Final = 100
# Clicks by position are a diagnostic: a hash sample of this many impressions is plenty.
CLICK_SAMPLE: Final = 500_000
# Simulated experiments per point of an empirical power curve, and points per curve.
POWER_EXPERIMENTS: Final = 200
MIN_POWER_EXPERIMENTS: Final = 100
POWER_POINTS: Final = 10
# Most users drawn for one empirical power curve (experiments x sizes x arms): bounds its cost.
POWER_DRAWS: Final = 150_000_000

# Methods whose team assignment is fair by design (a coin decides who picks), so an
# imbalance is a bug; balanced and optimized interleaving's teams are unbalanced legitimately.
TEAM_BALANCED_METHODS: Final = frozenset({"team_draft", "team_draft_multileave", "probabilistic"})

HIGHER_IS_BETTER: Final[Mapping[Metric, bool]] = {
    Metric.CTR: True,
    Metric.CLICKS_PER_QUERY: True,
    Metric.ABANDONMENT: False,
    Metric.RECIPROCAL_RANK: True,
    Metric.SUCCESS: True,
}

Source = Literal["empirical", "analytic"]


class ReportError(Exception):
    """The report cannot be built: the log is missing, empty or unreadable. One-line message."""


class AlertKind(StrEnum):
    """What an alert is about."""

    BALANCED_BIAS = "balanced_bias"
    DESIGNS_DISAGREE = "designs_disagree"
    WRONG_WINNER = "wrong_winner"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    UNBALANCED_TEAMS = "unbalanced_teams"
    FEW_USERS = "few_users"
    UNDERPOWERED = "underpowered"
    EXCLUDED = "excluded"
    NO_DATA = "no_data"
    UNCOMPACTED = "uncompacted"


_SEVERE: Final = frozenset(
    {
        AlertKind.SAMPLE_RATIO_MISMATCH,
        AlertKind.UNBALANCED_TEAMS,
        AlertKind.WRONG_WINNER,
        AlertKind.DESIGNS_DISAGREE,
    }
)


@dataclass(frozen=True, slots=True)
class Alert:
    """A warning shown in the report and its terminal summary.

    Attributes:
        kind: What it is about.
        experiment: Experiment label ("id vN"), or "" for the whole report.
        message: One sentence for a person.
    """

    kind: AlertKind
    experiment: str
    message: str

    @property
    def severe(self) -> bool:
        """Whether the alert means a result should not be trusted as it stands."""
        return self.kind in _SEVERE


@dataclass(frozen=True, slots=True)
class PositionClicks:
    """Clicks at each position of the page for one group: an interleaving team or an A/B arm.

    Attributes:
        group: The team's ranker or the arm's name.
        shown: Impressions (in the sample) in which the group held each position.
        clicks: Clicks (in the sample) on the group's result at each position.
        sampled: Impressions the counts come from.
        impressions: Impressions of the experiment (the sample is a hash sample of these).
    """

    group: str
    shown: tuple[int, ...]
    clicks: tuple[int, ...]
    sampled: int
    impressions: int

    @property
    def rates(self) -> tuple[float, ...]:
        """Click-through rate at each position (nan where the group never held it)."""
        return tuple(c / s if s else math.nan for c, s in zip(self.clicks, self.shown, strict=True))


@dataclass(frozen=True, slots=True)
class PairResult:
    """One ranker pair of an interleaving experiment.

    Attributes:
        preference: The preference of `preference.a` over `preference.b`.
        p_adjusted: The clustered t-test p-value, Holm-adjusted across the experiment's pairs
            (equal to `preference.p_t` for two rankers).
        winner: The preferred ranker if p_adjusted < alpha, else None.
        sequential: The mSPRT path on per-user mean outcomes, one look per UTC day.
        days: The day of each look.
    """

    preference: Preference
    p_adjusted: float
    winner: str | None
    sequential: SequentialPath
    days: tuple[date, ...]

    @property
    def a(self) -> str:
        """First ranker of the pair (delta > 0 favours it)."""
        return self.preference.a

    @property
    def b(self) -> str:
        """Second ranker of the pair."""
        return self.preference.b


@dataclass(frozen=True, slots=True)
class InterleavingResult:
    """The analysis of one interleaving experiment version.

    Attributes:
        spec: The experiment as designed.
        impressions: Impressions analysed (excluded ones left out).
        users: Users who saw them.
        excluded: Impressions marked excluded.
        pairs: One result per ranker pair, in the spec's ranker order.
        first_pick: Which team took position 0.
        balance: Team shares at every position.
        clicks_by_position: One profile per team, in the spec's ranker order (empty unless
            the report was built with plots).
    """

    spec: ExperimentSpec
    impressions: int
    users: int
    excluded: int
    pairs: tuple[PairResult, ...]
    first_pick: FirstPickBalance
    balance: TeamBalance
    clicks_by_position: tuple[PositionClicks, ...]

    @property
    def label(self) -> str:
        """ "experiment_id vN"."""
        return _label(self.spec)

    @property
    def method(self) -> str:
        """The interleaving method's name."""
        return self.spec.method or ""


@dataclass(frozen=True, slots=True)
class ABResult:
    """The analysis of one A/B experiment version.

    Attributes:
        spec: The experiment as designed; `spec.rankers[0]` is the control arm.
        impressions: Impressions analysed.
        users: Users per arm with at least one impression, in the spec's arm order.
        excluded: Impressions marked excluded.
        comparisons: Every metric of every treatment arm against control (metrics without a
            value in some arm, such as success without relevance judgments, are left out).
        srm: The sample-ratio check, or None if it could not run (an arm not in the design).
        srm_source: "assignments" when units were counted from the assignment log, else
            "impressions".
        clicks_by_position: One profile per arm (empty unless built with plots).
    """

    spec: ExperimentSpec
    impressions: int
    users: tuple[int, ...]
    excluded: int
    comparisons: tuple[MetricComparison, ...]
    srm: SampleRatio | None
    srm_source: str
    clicks_by_position: tuple[PositionClicks, ...]

    @property
    def label(self) -> str:
        """ "experiment_id vN"."""
        return _label(self.spec)


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Users and queries one test needs to find the pair's better ranker.

    Attributes:
        experiment: Experiment label.
        design: A/B or interleaving.
        test: What is tested: the interleaving method (its clustered t-test) or the A/B metric.
        a: First ranker (interleaving) or control arm (A/B).
        b: Second ranker or treatment arm.
        users: Users observed in the experiment (all arms).
        impressions_per_user: Mean impressions per user, to turn users into queries.
        favours: The ranker the observed effect favours, or None for no effect.
        analytic_users: Users (all arms) for 80% and 95% power at the observed effect; inf
            when no effect was observed.
        curve: The empirical power curve, or None when there was no effect to simulate.
        direction: "truth" when the curve counts finding the truly better ranker (truth.json),
            "observed" when it counts finding the direction of the full-sample effect.
    """

    experiment: str
    design: Design
    test: str
    a: str
    b: str
    users: int
    impressions_per_user: float
    favours: str | None
    analytic_users: tuple[float, float]
    curve: PowerCurve | None
    direction: str

    @property
    def label(self) -> str:
        """Design and test for a table: "team_draft" or "A/B ctr"."""
        return self.test if self.design is Design.INTERLEAVING else f"A/B {self.test}"

    @property
    def analytic_queries(self) -> tuple[float, float]:
        """Queries (impressions) for 80% and 95% power, analytic."""
        return (
            self.analytic_users[0] * self.impressions_per_user,
            self.analytic_users[1] * self.impressions_per_user,
        )

    @property
    def empirical_queries(self) -> tuple[float | None, float | None]:
        """Queries for 80% and 95% power from the power curve (None: not reached)."""
        if self.curve is None:
            return (None, None)
        return (
            self.curve.impressions_at(POWER_LEVELS[0]),
            self.curve.impressions_at(POWER_LEVELS[1]),
        )

    def queries(self, level: int) -> tuple[float, Source]:
        """Queries at POWER_LEVELS[level]: empirical when the curve reached it, else analytic."""
        empirical = self.empirical_queries[level]
        if empirical is not None:
            return empirical, "empirical"
        return self.analytic_queries[level], "analytic"


@dataclass(frozen=True, slots=True)
class QueriesRatio:
    """How many times more queries an A/B metric needs than interleaving, on one ranker pair.

    Attributes:
        ab: The A/B metric's sample size.
        interleaving: The interleaving test's sample size.
        analytic: Ratio at 80% and 95% power from the analytic sample sizes.
        empirical: Ratio from the power curves (None where a curve did not reach the level).
    """

    ab: SampleSize
    interleaving: SampleSize
    analytic: tuple[float, float]
    empirical: tuple[float | None, float | None]

    def ratio(self, level: int) -> tuple[float, Source]:
        """The ratio at POWER_LEVELS[level]: empirical when both curves reached it."""
        empirical = self.empirical[level]
        if empirical is not None:
            return empirical, "empirical"
        return self.analytic[level], "analytic"


@dataclass(frozen=True, slots=True)
class Truth:
    """The simulator's known ranker quality (`truth.json`).

    Attributes:
        metric: Name of the utility (e.g. "ndcg@10").
        description: What it measures.
        utilities: (ranker, true utility) pairs, higher is better.
    """

    metric: str
    description: str
    utilities: tuple[tuple[str, float], ...]

    def better(self, a: str, b: str) -> str | None:
        """The truly better of `a` and `b`, or None if either is unknown or they tie."""
        known = dict(self.utilities)
        if a not in known or b not in known or known[a] == known[b]:
            return None
        return a if known[a] > known[b] else b


@dataclass(frozen=True, slots=True)
class Verdict:
    """One design's decision on one ranker pair, against the truth.

    Attributes:
        design: "team_draft", "balanced", ... or "A/B ctr", ...
        experiment: Experiment label.
        a: One ranker of the pair.
        b: The other.
        decided: The significant winner, or None (no decision).
        truth: The truly better ranker.
    """

    design: str
    experiment: str
    a: str
    b: str
    decided: str | None
    truth: str

    @property
    def agrees(self) -> bool | None:
        """True if the decision is the truth, False if it is the other ranker, None if none."""
        return None if self.decided is None else self.decided == self.truth


@dataclass(frozen=True, slots=True)
class Agreement:
    """How often one design's significant winner was the truly better ranker.

    Attributes:
        design: Design label, as in `Verdict.design`.
        agree: Decisions that named the truly better ranker.
        wrong: Decisions that named the worse one.
        no_decision: Comparisons without a significant winner.
    """

    design: str
    agree: int
    wrong: int
    no_decision: int

    @property
    def total(self) -> int:
        """Comparisons with a known truth."""
        return self.agree + self.wrong + self.no_decision

    @property
    def rate(self) -> float:
        """agree / total: undecided comparisons count against the design."""
        return self.agree / self.total if self.total else math.nan


@dataclass(frozen=True, slots=True)
class Headline:
    """The answer in one place: who won, how sure, and what each design needed.

    Attributes:
        experiment: The interleaving experiment the headline is about.
        method: Its interleaving method.
        a: The ranker the estimate favours (the winner when there is one).
        b: The other ranker.
        winner: The significant winner, or None.
        p_value: Clustered t-test p-value (Holm-adjusted for a multileave).
        delta: delta_AB of `a` over `b` (>= 0).
        ci: Bootstrap interval of delta.
        interleaving: The interleaving test's sample size.
        wins: Impressions `a` won.
        losses: Impressions `b` won.
        ties: Impressions neither won.
        truth: The truly better ranker (truth.json), or None if unknown.
        interleaving: The interleaving test's sample size.
        paired: Whether an A/B experiment compares the same two rankers.
        ab: The most sensitive A/B metric on the same pair that moves towards the better
            ranker (the truly better one if known, else `a`); None without a paired A/B
            experiment, or if no metric moves that way.
        ab_experiment: The A/B experiment of `ab`.
        ratio: A/B : interleaving queries at 80% and 95% power, with each one's source.
    """

    experiment: str
    method: str
    a: str
    b: str
    winner: str | None
    p_value: float
    delta: float
    ci: tuple[float, float]
    wins: int
    losses: int
    ties: int
    truth: str | None
    interleaving: SampleSize
    paired: bool
    ab: SampleSize | None
    ab_experiment: str | None
    ratio: tuple[tuple[float, Source], tuple[float, Source]] | None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the HTML report and the terminal summary show.

    Attributes:
        logdir: The log directory analysed.
        alpha: Significance level of every test.
        seed: Seed of every random draw (bootstrap, power curves).
        resamples: Bootstrap resamples per interval.
        plots: Whether figures are drawn (and clicks by position computed).
        interleaving: Interleaving experiments, in the order they were designed.
        ab: A/B experiments, in that order.
        sample_sizes: Every design's sample size, interleaving first.
        ratios: A/B : interleaving ratios for every paired A/B metric and interleaving test.
        truth: The known ranker quality, if the log has one.
        verdicts: Each design's decision against the truth (empty without truth).
        agreement: Agreement with the truth per design (empty without truth).
        alerts: Warnings, most severe first.
        headline: The headline, or None without an interleaving experiment.
        seconds: Time taken to build the report.
        generated_at: When the report was built (UTC).
    """

    logdir: str
    alpha: float
    seed: int
    resamples: int
    plots: bool
    interleaving: tuple[InterleavingResult, ...]
    ab: tuple[ABResult, ...]
    sample_sizes: tuple[SampleSize, ...]
    ratios: tuple[QueriesRatio, ...]
    truth: Truth | None
    verdicts: tuple[Verdict, ...]
    agreement: tuple[Agreement, ...]
    alerts: tuple[Alert, ...]
    headline: Headline | None
    seconds: float
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


# --------------------------------------------------------------------------------------------
# Reading the log


def _label(spec: ExperimentSpec) -> str:
    return f"{spec.experiment_id} v{spec.version}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _rng(seed: int, *keys: object) -> np.random.Generator:
    """A generator derived from a stable hash of (seed, keys), independent of call order."""
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _experiment_filter(spec: ExperimentSpec) -> pl.Expr:
    return (pl.col("experiment_id") == spec.experiment_id) & (
        pl.col("experiment_version") == spec.version
    )


def _impressions(logdir: Path, spec: ExperimentSpec) -> pl.LazyFrame:
    return scan(logdir, Kind.IMPRESSIONS).filter(
        _experiment_filter(spec) & pl.col("excluded").is_null()
    )


def read_truth(logdir: str | os.PathLike[str]) -> Truth | None:
    """The ranker truth of a simulated log (`truth.json`), or None if there is none.

    Raises:
        ReportError: If the file exists but is not the expected JSON object.
    """
    path = Path(logdir) / "truth.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        utilities = tuple(
            sorted((str(name), float(value)) for name, value in data["rankers"].items())
        )
        if not all(math.isfinite(value) for _, value in utilities):
            raise ValueError("every ranker's value must be a finite number")
        return Truth(str(data["metric"]), str(data.get("description", "")), utilities)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReportError(f"{path}: not a truth file ({_one_line(exc)})") from exc


def _specs(logdir: Path) -> tuple[ExperimentSpec, ...]:
    if not logdir.exists():
        raise ReportError(f"log directory {logdir} does not exist")
    if not logdir.is_dir():
        raise ReportError(f"{logdir} is not a directory")
    path = logdir / "experiments.jsonl"
    if not path.exists():
        raise ReportError(f"no experiments in {logdir}: {path.name} is missing")
    try:
        specs = read_experiments(logdir)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportError(f"{path}: corrupt experiment spec ({_one_line(exc)})") from exc
    if not specs:
        raise ReportError(f"no experiments in {path}")
    return specs


# --------------------------------------------------------------------------------------------
# Interleaving


def _with_days(outcomes: pl.DataFrame, logdir: Path, spec: ExperimentSpec) -> pl.LazyFrame:
    """The outcomes with the UTC day of their impression.

    Taken from a `ts` column when the outcomes carry one; otherwise joined from the
    impressions on a 64-bit hash of the impression id (much cheaper than joining strings).
    A hash collision would duplicate rows, so the row count is checked, and on a mismatch
    the join is redone on the ids themselves.
    """
    if "ts" in outcomes.columns:
        return outcomes.lazy().with_columns(day=pl.col("ts").dt.date())
    imps = _impressions(logdir, spec)
    key = pl.col("impression_id").hash(seed=7)
    hashed = (
        outcomes.lazy()
        .with_columns(key=key)
        .join(imps.select(key=key, day=pl.col("ts").dt.date()), on="key", how="inner")
        .select("unit_id", "a", "b", "outcome", "day")
        .collect(engine="streaming")
    )
    if hashed.height == outcomes.height:
        return hashed.lazy()
    logger.warning("%s: impression id hash collision; joining on the ids", _label(spec))
    days = imps.select("impression_id", day=pl.col("ts").dt.date())
    return (
        outcomes.lazy()
        .join(days, on="impression_id", how="inner")
        .select("unit_id", "a", "b", "outcome", "day")
    )


@dataclass(frozen=True, slots=True)
class _PairData:
    """One ranker pair's per-user totals and its cumulative daily looks."""

    totals: UserTotals
    days: tuple[date, ...]
    looks: tuple[Moments, ...]


# Users per block when the looks are accumulated as a (users x days) matrix: bounds memory.
_LOOK_CELLS: Final = 1 << 22


def _user_runs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order rows so each user's rows form one run, and find where the runs start.

    Args:
        first: A 64-bit hash of each row's user id; rows are sorted by it.
        second: An independent 64-bit hash of the same ids. If two users' `first` hashes
            collide, their rows may interleave within one run: the `second` hash then
            differs within that run, and rows are sorted by both hashes instead (users
            whose two hashes both collide, with odds near 2^-128, would be merged).

    Returns:
        The row order and the index (into the ordered rows) of each run's first row.
    """
    # polars sorts on every core, about twice as fast as numpy's argsort here.
    order = pl.Series(first).arg_sort().to_numpy()
    a, b = first[order], second[order]
    starts = np.flatnonzero(np.concatenate(([True], a[1:] != a[:-1])))
    if (np.minimum.reduceat(b, starts) == np.maximum.reduceat(b, starts)).all():
        return order, starts
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    changed = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return order, np.flatnonzero(changed)


def _pair_data(with_days: pl.LazyFrame, a: str, b: str, label: str) -> _PairData | None:
    """Per-user totals and daily looks of the pair (a, b), oriented so positive favours a.

    Each user's impressions are grouped by sorting on a 64-bit hash of the user id (far
    cheaper than grouping on the strings), which also orders users reproducibly for the
    seeded bootstrap; see `_user_runs` for hash collisions. The rest is O(impressions)
    numpy. A look at day d holds the Moments, over users seen by d, of each user's mean
    outcome up to d: the same as `analysis.sequential.cumulative_user_moments(...,
    period="day")`, computed on blocks of users as a (users x days) matrix of running sums
    instead of one re-aggregation per day.
    """
    forward = (pl.col("a") == a) & (pl.col("b") == b)
    backward = (pl.col("a") == b) & (pl.col("b") == a)
    rows = (
        with_days.filter(forward | backward)
        .select(
            "unit_id",
            first=pl.col("unit_id").hash(seed=11),
            second=pl.col("unit_id").hash(seed=12),
            day=pl.col("day").cast(pl.Int32),  # days since the epoch
            y=pl.when(forward).then(pl.col("outcome")).otherwise(-pl.col("outcome")),
        )
        .collect()
    )
    if rows.height == 0:
        return None
    order, starts = _user_runs(rows["first"].to_numpy(), rows["second"].to_numpy())
    users = starts.size
    counts = np.diff(np.append(starts, rows.height)).astype(np.int64)
    code = np.repeat(np.arange(users), counts)
    y = rows["y"].to_numpy().astype(np.float64)[order]
    if np.isnan(y).any() or (np.abs(y) > 1).any():
        raise ReportError(f"{label}: outcomes of ({a}, {b}) must be non-null and lie in [-1, 1]")
    totals = UserTotals(
        unit_ids=tuple(rows["unit_id"].gather(order[starts]).to_list()),
        impressions=counts,
        wins=np.bincount(code, weights=y > 0, minlength=users).astype(np.int64),
        losses=np.bincount(code, weights=y < 0, minlength=users).astype(np.int64),
        ties=np.bincount(code, weights=y == 0, minlength=users).astype(np.int64),
        total=np.bincount(code, weights=y, minlength=users).astype(np.float64),
        total_sq=np.bincount(code, weights=y * y, minlength=users).astype(np.float64),
    )
    day_number = rows["day"].to_numpy().astype(np.int64)[order]
    first_day = int(day_number.min())
    offset = day_number - first_day
    used = np.flatnonzero(np.bincount(offset))  # the days with an impression, ascending
    index = np.zeros(int(offset.max()) + 1, dtype=np.int64)
    index[used] = np.arange(used.size)
    day, days = index[offset], used + first_day
    n_days = days.size
    sums = np.zeros((3, n_days))
    bounds = np.append(starts, rows.height)
    block = max(1, _LOOK_CELLS // n_days)
    for lo in range(0, users, block):
        hi = min(users, lo + block)
        part = slice(bounds[lo], bounds[hi])
        cell = (code[part] - lo) * n_days + day[part]
        size = (hi - lo) * n_days
        n = np.bincount(cell, minlength=size).reshape(hi - lo, n_days).cumsum(axis=1)
        t = np.bincount(cell, weights=y[part], minlength=size).reshape(hi - lo, n_days)
        t = t.cumsum(axis=1)
        seen = n > 0
        mean = np.divide(t, n, out=np.zeros_like(t), where=seen)
        sums += (seen.sum(axis=0), mean.sum(axis=0), (mean * mean).sum(axis=0))
    looks = tuple(Moments(int(k), float(total), float(total_sq)) for k, total, total_sq in sums.T)
    epoch = date(1970, 1, 1)
    return _PairData(
        totals, tuple(date.fromordinal(epoch.toordinal() + int(d)) for d in days), looks
    )


def _team_patterns(logdir: Path, spec: ExperimentSpec) -> pl.DataFrame:
    """Distinct team lists of the experiment's pages with their counts (excluded left out)."""
    return (
        _impressions(logdir, spec)
        .group_by("teams")
        .agg(n=pl.len().cast(pl.Int64))
        .collect(engine="streaming")
    )


def _position_team_counts(patterns: pl.DataFrame, n_teams: int) -> list[tuple[int, ...]]:
    """Impressions in which each team held each position: one tuple of n_teams per position."""
    long = (
        patterns.lazy()
        .with_columns(position=pl.int_ranges(pl.col("teams").list.len()))
        .explode("teams", "position")
        .drop_nulls("teams")
        .filter(pl.col("teams") >= 0)
        .group_by("position", "teams")
        .agg(pl.col("n").sum())
        .collect()
    )
    depth = int(long.select(pl.col("position").max() + 1).item()) if long.height else 0
    counts = np.zeros((depth, n_teams), dtype=np.int64)
    for position, team, n in long.select("position", "teams", "n").iter_rows():
        if not 0 <= team < n_teams:
            raise ReportError(f"team {team} is outside the {n_teams} rankers of the experiment")
        counts[position, team] += n
    return [tuple(int(c) for c in row) for row in counts]


def _equal_shares_p(counts: Sequence[int]) -> float:
    """Two-sided test of equal team shares: binomial for two teams, chi-square otherwise.

    The same tests as `analysis.balance`, applied to counts rather than to the pages.
    """
    from scipy import stats

    total = sum(counts)
    if total == 0:
        return 1.0
    if len(counts) == 2:
        return float(stats.binomtest(counts[0], total, 0.5).pvalue)
    return float(stats.chisquare(np.asarray(counts, dtype=np.float64)).pvalue)


def _balance(
    positions: list[tuple[int, ...]], n_teams: int
) -> tuple[FirstPickBalance, TeamBalance]:
    """First-pick and per-position balance from team counts, as `analysis.balance` computes."""
    from scipy import stats

    first = positions[0] if positions else (0,) * n_teams
    p_first = _equal_shares_p(first)
    first_pick = FirstPickBalance(first, sum(first), p_first, p_first < BALANCE_ALPHA)
    held = [(i, c) for i, c in enumerate(positions) if sum(c) > 0]
    if not held:
        return first_pick, TeamBalance((), False)
    raw = [float(stats.chisquare(np.asarray(c, dtype=np.float64)).pvalue) for _, c in held]
    adjusted = holm([(str(i), "") for i, _ in held], raw, alpha=BALANCE_ALPHA)
    balances = tuple(
        PositionBalance(i, c, p, adj.p_adjusted)
        for (i, c), p, adj in zip(held, raw, adjusted, strict=True)
    )
    return first_pick, TeamBalance(balances, any(b.p_adjusted < BALANCE_ALPHA for b in balances))


def _sample_filter(impressions: int) -> pl.Expr:
    """Keep about CLICK_SAMPLE impressions, chosen by a hash of their id (all if fewer)."""
    stride = max(1, math.ceil(impressions / CLICK_SAMPLE))
    if stride == 1:
        return pl.lit(True)
    return pl.col("impression_id").hash(seed=20_261_101) % stride == 0


def _clicks_by_position(
    logdir: Path, spec: ExperimentSpec, impressions: int, groups: Sequence[str], *, by_team: bool
) -> tuple[PositionClicks, ...]:
    """Click-through rate by position per team (interleaving) or per arm (A/B), sampled."""
    keep = _sample_filter(impressions)
    imps = _impressions(logdir, spec).filter(keep).select("impression_id", "treatment", "teams")
    clicks = (
        scan(logdir, Kind.CLICKS)
        .filter(_experiment_filter(spec) & keep)
        .select("impression_id", "position")
        .unique()
        .join(imps, on="impression_id", how="inner")
        .filter(pl.col("position") < pl.col("teams").list.len())
    )
    if by_team:
        group = pl.col("teams").list.get(pl.col("position"), null_on_oob=True).cast(pl.Int64)
        shown_lf = (
            imps.select(team=pl.col("teams"), position=pl.int_ranges(pl.col("teams").list.len()))
            .explode("team", "position")
            .select(group=pl.col("team").cast(pl.Int64), position="position")
        )
    else:
        names = {name: i for i, name in enumerate(groups)}
        group = pl.col("treatment").replace_strict(names, default=-1, return_dtype=pl.Int64)
        shown_lf = imps.select(
            group=group, position=pl.int_ranges(pl.col("teams").list.len())
        ).explode("position")
    shown, clicked, sampled = pl.collect_all(
        [
            shown_lf.drop_nulls().group_by("group", "position").len(),
            clicks.select(group=group, position=pl.col("position").cast(pl.Int64))
            .drop_nulls()
            .group_by("group", "position")
            .len(),
            imps.select(pl.len()),
        ],
        engine="streaming",
    )
    depth = int(shown.select(pl.col("position").max() + 1).item()) if shown.height else 0
    table = np.zeros((2, len(groups), depth), dtype=np.int64)
    for k, frame in enumerate((shown, clicked)):
        for g, position, n in frame.select("group", "position", "len").iter_rows():
            if 0 <= g < len(groups) and position < depth:
                table[k, g, position] += n
    n_sampled = int(sampled.item())
    return tuple(
        PositionClicks(
            name,
            tuple(int(x) for x in table[0, g]),
            tuple(int(x) for x in table[1, g]),
            n_sampled,
            impressions,
        )
        for g, name in enumerate(groups)
    )


def _excluded(logdir: Path, spec: ExperimentSpec) -> int:
    frame = (
        scan(logdir, Kind.IMPRESSIONS)
        .filter(_experiment_filter(spec))
        .select(pl.col("excluded").is_not_null().sum())
        .collect(engine="streaming")
    )
    return int(frame.item() or 0)


def _interleaving(
    logdir: Path,
    spec: ExperimentSpec,
    *,
    alpha: float,
    seed: int,
    resamples: int,
    plots: bool,
) -> tuple[InterleavingResult, dict[tuple[str, str], UserTotals]] | None:
    outcomes = interleaving_outcomes(logdir, spec)
    if outcomes.height == 0:
        return None
    with_days = _with_days(outcomes, logdir, spec)
    del outcomes
    users = 0
    pairs: list[tuple[Preference, SequentialPath, tuple[date, ...]]] = []
    totals_by_pair: dict[tuple[str, str], UserTotals] = {}
    for a, b in combinations(spec.rankers, 2):
        data = _pair_data(with_days, a, b, _label(spec))
        if data is None:
            continue
        totals = data.totals
        users = max(users, totals.users)
        totals_by_pair[(a, b)] = totals
        pref = preference_from_totals(
            totals,
            a,
            b,
            rng=_rng(seed, "bootstrap", _label(spec), a, b),
            alpha=alpha,
            resamples=resamples,
        )
        path = msprt(data.looks, rho=mixing_rho(max(totals.users, 1), alpha), alpha=alpha)
        pairs.append((pref, path, data.days))
    adjusted = holm([(p.a, p.b) for p, _, _ in pairs], [p.p_t for p, _, _ in pairs], alpha=alpha)
    results = []
    for (pref, path, days), adj in zip(pairs, adjusted, strict=True):
        winner = None
        if adj.reject and pref.delta != 0:
            winner = pref.a if pref.delta > 0 else pref.b
        results.append(PairResult(pref, adj.p_adjusted, winner, path, days))
    patterns = _team_patterns(logdir, spec)
    n_teams = len(spec.rankers)
    positions = _position_team_counts(patterns, n_teams)
    first_pick, balance = _balance(positions, n_teams)
    impressions = int(patterns["n"].sum())
    clicks = (
        _clicks_by_position(logdir, spec, impressions, spec.rankers, by_team=True) if plots else ()
    )
    result = InterleavingResult(
        spec=spec,
        impressions=impressions,
        users=users,
        excluded=_excluded(logdir, spec),
        pairs=tuple(results),
        first_pick=first_pick,
        balance=balance,
        clicks_by_position=clicks,
    )
    return result, totals_by_pair


# --------------------------------------------------------------------------------------------
# A/B


@dataclass(frozen=True, slots=True)
class _ArmValues:
    """Per-user values of every metric in one arm (for the power curves)."""

    users: int
    impressions: int
    values: Mapping[Metric, np.ndarray]
    moments: Mapping[Metric, Moments]


def _arm_values(per_user: pl.DataFrame, arm: str) -> _ArmValues:
    rows = per_user.filter(pl.col("arm") == arm)
    values: dict[Metric, np.ndarray] = {}
    moments: dict[Metric, Moments] = {}
    for metric in Metric:
        x = rows[str(metric)].drop_nulls().to_numpy().astype(np.float64)
        values[metric] = x
        moments[metric] = Moments.from_array(x)
    return _ArmValues(rows.height, int(rows["impressions"].sum()), values, moments)


def _units_per_arm(
    logdir: Path, spec: ExperimentSpec, per_user: pl.DataFrame
) -> tuple[dict[str, int], str]:
    assigned = (
        scan(logdir, Kind.ASSIGNMENTS)
        .filter(_experiment_filter(spec))
        .group_by("treatment")
        .agg(pl.col("unit_id").n_unique())
        .collect(engine="streaming")
    )
    if assigned.height:
        return {str(t): int(n) for t, n in assigned.iter_rows()}, "assignments"
    seen = per_user.group_by("arm").agg(pl.col("unit_id").n_unique())
    return {str(t): int(n) for t, n in seen.iter_rows()}, "impressions"


def _ab(
    logdir: Path, spec: ExperimentSpec, *, alpha: float, plots: bool
) -> tuple[ABResult, dict[str, _ArmValues]] | None:
    frame = ab_outcomes(logdir, spec)
    if frame.height == 0:
        return None
    per_user = user_metrics(frame)
    impressions = frame.height
    del frame
    arms = {arm: _arm_values(per_user, arm) for arm in spec.rankers}
    control = spec.rankers[0]
    comparisons: list[MetricComparison] = []
    for treatment in spec.rankers[1:]:
        for metric in Metric:
            c, t = arms[control].moments[metric], arms[treatment].moments[metric]
            if c.n == 0 or t.n == 0:
                continue
            comparisons.append(
                compare_moments(c, t, alpha=alpha, metric=str(metric), names=(control, treatment))
            )
    counts, source = _units_per_arm(logdir, spec, per_user)
    srm: SampleRatio | None
    try:
        srm = sample_ratio_mismatch(counts, dict(zip(spec.rankers, spec.weights, strict=True)))
    except ValueError as exc:
        logger.warning("%s: no sample-ratio check (%s)", _label(spec), exc)
        srm = None
    clicks = (
        _clicks_by_position(logdir, spec, impressions, spec.rankers, by_team=False) if plots else ()
    )
    result = ABResult(
        spec=spec,
        impressions=impressions,
        users=tuple(arms[arm].users for arm in spec.rankers),
        excluded=_excluded(logdir, spec),
        comparisons=tuple(comparisons),
        srm=srm,
        srm_source=source,
        clicks_by_position=clicks,
    )
    return result, arms


def _ab_winner(comparison: MetricComparison) -> str | None:
    """The arm a significant comparison favours, given whether the metric is better higher."""
    if not comparison.significant or comparison.effect == 0:
        return None
    up = HIGHER_IS_BETTER[Metric(comparison.metric)]
    return comparison.treatment if (comparison.effect > 0) == up else comparison.control


def _ab_favours(comparison: MetricComparison) -> str | None:
    """The arm the observed effect favours, significant or not."""
    if comparison.effect == 0 or math.isnan(comparison.effect):
        return None
    up = HIGHER_IS_BETTER[Metric(comparison.metric)]
    return comparison.treatment if (comparison.effect > 0) == up else comparison.control


# --------------------------------------------------------------------------------------------
# Sample sizes


def _plan(analytic: tuple[float, float], arms: int) -> tuple[tuple[int, ...], int] | None:
    """Sizes (users per arm) and experiments per size for an empirical power curve.

    The sizes bracket the analytic 80% and 95% sizes. A curve may draw at most POWER_DRAWS
    users in all (about a second): beyond that it first runs fewer experiments per size
    (down to MIN_POWER_EXPERIMENTS), then stops at a smaller largest size, so a very weak
    effect's curve may end below 95% (the report then uses the analytic size).

    Returns:
        (sizes, experiments), or None without a finite analytic size (no effect observed)
        or when even the smallest useful experiments would exceed the budget.
    """
    n80, n95 = (x / arms for x in analytic)
    if not (math.isfinite(n80) and math.isfinite(n95)):
        return None
    low = max(4, math.floor(n80 / 8))
    high = max(low + POWER_POINTS, math.ceil(n95 * 2))
    grid = size_grid(low, high, POWER_POINTS)
    experiments = POWER_EXPERIMENTS
    if experiments * arms * sum(grid) > POWER_DRAWS:
        experiments = max(MIN_POWER_EXPERIMENTS, POWER_DRAWS // (arms * sum(grid)))
    while experiments * arms * sum(grid) > POWER_DRAWS and grid[-1] > low + POWER_POINTS:
        high = max(low + POWER_POINTS, int(grid[-1] * 0.8))
        grid = size_grid(low, high, POWER_POINTS)
    if experiments * arms * sum(grid) > POWER_DRAWS:
        return None  # even the smallest experiments are too large to simulate
    return grid, experiments


def _interleaving_size(
    result: InterleavingResult,
    pair: PairResult,
    totals: UserTotals,
    truth: Truth | None,
    *,
    alpha: float,
    seed: int,
) -> SampleSize:
    analytic = (
        interleaving_users(totals, power=POWER_LEVELS[0], alpha=alpha),
        interleaving_users(totals, power=POWER_LEVELS[1], alpha=alpha),
    )
    better = truth.better(pair.a, pair.b) if truth else None
    direction = None if better is None else (1 if better == pair.a else -1)
    delta = pair.preference.delta
    favours = None if delta == 0 else (pair.a if delta > 0 else pair.b)
    curve = None
    plan = _plan(analytic, 1)
    if plan is not None and (direction is not None or delta != 0):
        curve = interleaving_power_curve(
            totals,
            plan[0],
            rng=_rng(seed, "power", result.label, pair.a, pair.b),
            experiments=plan[1],
            alpha=alpha,
            direction=direction,
        )
    return SampleSize(
        experiment=result.label,
        design=Design.INTERLEAVING,
        test=result.method,
        a=pair.a,
        b=pair.b,
        users=totals.users,
        impressions_per_user=float(totals.impressions.mean()),
        favours=favours,
        analytic_users=analytic,
        curve=curve,
        direction="truth" if direction is not None else "observed",
    )


def _ab_sizes(
    result: ABResult,
    arms: Mapping[str, _ArmValues],
    truth: Truth | None,
    *,
    alpha: float,
    seed: int,
) -> list[SampleSize]:
    sizes = []
    users = sum(arm.users for arm in arms.values())
    per_user = sum(arm.impressions for arm in arms.values()) / max(users, 1)
    for comparison in result.comparisons:
        metric = Metric(comparison.metric)
        control, treatment = arms[comparison.control], arms[comparison.treatment]
        c, t = control.moments[metric], treatment.moments[metric]
        analytic = tuple(
            2 * ab_users_per_arm(c, t, power=level, alpha=alpha)
            if c.n > 1 and t.n > 1
            else math.inf
            for level in POWER_LEVELS
        )
        better = truth.better(comparison.control, comparison.treatment) if truth else None
        direction = None
        if better is not None:
            up = 1 if HIGHER_IS_BETTER[metric] else -1
            direction = up if better == comparison.treatment else -up
        curve = None
        plan = _plan((analytic[0], analytic[1]), 2)
        if plan is not None and (direction is not None or comparison.effect != 0):
            curve = ab_power_curve(
                control.values[metric],
                treatment.values[metric],
                plan[0],
                rng=_rng(seed, "power", result.label, comparison.treatment, str(metric)),
                experiments=plan[1],
                alpha=alpha,
                impressions_per_user=per_user,
                direction=direction,
            )
        sizes.append(
            SampleSize(
                experiment=result.label,
                design=Design.AB,
                test=str(metric),
                a=comparison.control,
                b=comparison.treatment,
                users=c.n + t.n,
                impressions_per_user=per_user,
                favours=_ab_favours(comparison),
                analytic_users=(analytic[0], analytic[1]),
                curve=curve,
                direction="truth" if direction is not None else "observed",
            )
        )
    return sizes


def _ratio(ab: SampleSize, il: SampleSize) -> QueriesRatio:
    def divide(x: float | None, y: float | None) -> float | None:
        if x is None or y is None or not math.isfinite(x) or not math.isfinite(y) or y <= 0:
            return None
        return x / y

    analytic = tuple(
        divide(x, y) for x, y in zip(ab.analytic_queries, il.analytic_queries, strict=True)
    )
    empirical = tuple(
        divide(x, y) for x, y in zip(ab.empirical_queries, il.empirical_queries, strict=True)
    )
    return QueriesRatio(
        ab=ab,
        interleaving=il,
        analytic=(
            math.inf if analytic[0] is None else analytic[0],
            math.inf if analytic[1] is None else analytic[1],
        ),
        empirical=(empirical[0], empirical[1]),
    )


def _same_pair(x: SampleSize, y: SampleSize) -> bool:
    return {x.a, x.b} == {y.a, y.b}


# --------------------------------------------------------------------------------------------
# Truth, headline and alerts


def _verdicts(
    interleaving: Sequence[InterleavingResult], ab: Sequence[ABResult], truth: Truth
) -> tuple[Verdict, ...]:
    out = []
    for result in interleaving:
        for pair in result.pairs:
            better = truth.better(pair.a, pair.b)
            if better is not None:
                out.append(
                    Verdict(result.method, result.label, pair.a, pair.b, pair.winner, better)
                )
    for ab_result in ab:
        for comparison in ab_result.comparisons:
            better = truth.better(comparison.control, comparison.treatment)
            if better is not None:
                out.append(
                    Verdict(
                        f"A/B {comparison.metric}",
                        ab_result.label,
                        comparison.control,
                        comparison.treatment,
                        _ab_winner(comparison),
                        better,
                    )
                )
    return tuple(out)


def _agreement(verdicts: Iterable[Verdict]) -> tuple[Agreement, ...]:
    tally: dict[str, list[int]] = {}
    for v in verdicts:
        row = tally.setdefault(v.design, [0, 0, 0])
        row[0 if v.agrees else 1 if v.agrees is False else 2] += 1
    return tuple(Agreement(design, *counts) for design, counts in tally.items())


def _headline(
    interleaving: Sequence[InterleavingResult],
    sizes: Sequence[SampleSize],
    truth: Truth | None,
) -> Headline | None:
    if not interleaving:
        return None
    ab_sizes = [s for s in sizes if s.design is Design.AB]
    ab_pairs = [{s.a, s.b} for s in ab_sizes]

    def rank(item: tuple[int, InterleavingResult]) -> tuple[int, int, int]:
        """Team-draft first, then other unbiased methods, then balanced; paired with an A/B
        experiment first; then the first designed."""
        index, result = item
        paired = any({p.a, p.b} in ab_pairs for p in result.pairs)
        method = 0 if result.method == "team_draft" else 2 if result.method == "balanced" else 1
        return (method, 0 if paired else 1, index)

    candidates = [(i, r) for i, r in enumerate(interleaving) if r.pairs]
    if not candidates:
        return None
    _, result = min(candidates, key=rank)
    pair = min(result.pairs, key=lambda p: p.p_adjusted)
    pref = pair.preference
    a, b = (pref.a, pref.b) if pref.delta >= 0 else (pref.b, pref.a)
    il = next(
        s
        for s in sizes
        if s.design is Design.INTERLEAVING
        and s.experiment == result.label
        and s.a == pair.a
        and s.b == pair.b
    )
    truly = truth.better(a, b) if truth else None
    toward = truly or a
    paired = [s for s in ab_sizes if _same_pair(s, il)]
    candidates_ab = [s for s in paired if s.favours == toward]
    best = min(candidates_ab, key=lambda s: s.queries(0)[0], default=None)
    ratio = None
    if best is not None:
        r = _ratio(best, il)
        ratio = (r.ratio(0), r.ratio(1))
    delta = abs(pref.delta)
    ci = (pref.ci_low, pref.ci_high) if pref.delta >= 0 else (-pref.ci_high, -pref.ci_low)
    return Headline(
        experiment=result.label,
        method=result.method,
        a=a,
        b=b,
        winner=pair.winner,
        p_value=pair.p_adjusted,
        delta=delta,
        ci=ci,
        wins=pref.wins if pref.delta >= 0 else pref.losses,
        losses=pref.losses if pref.delta >= 0 else pref.wins,
        ties=pref.ties,
        truth=truly,
        interleaving=il,
        paired=bool(paired),
        ab=best,
        ab_experiment=None if best is None else best.experiment,
        ratio=ratio,
    )


def _alerts(
    interleaving: Sequence[InterleavingResult],
    ab: Sequence[ABResult],
    sizes: Sequence[SampleSize],
    verdicts: Sequence[Verdict],
    missing: Sequence[ExperimentSpec],
    uncompacted: int = 0,
) -> tuple[Alert, ...]:
    alerts: list[Alert] = []
    if uncompacted:
        alerts.append(Alert(AlertKind.UNCOMPACTED, "", _uncompacted(uncompacted)))
    for spec in missing:
        alerts.append(
            Alert(AlertKind.NO_DATA, _label(spec), "designed, but no impressions were logged")
        )
    team_draft = [r for r in interleaving if r.method == "team_draft"]
    for result in interleaving:
        unbalanced = result.first_pick.unbalanced or result.balance.unbalanced
        if unbalanced and result.method in TEAM_BALANCED_METHODS:
            worst = min((b.p_adjusted for b in result.balance.positions), default=1.0)
            alerts.append(
                Alert(
                    AlertKind.UNBALANCED_TEAMS,
                    result.label,
                    f"teams are not balanced (first pick p = {result.first_pick.p_value:.2g}, "
                    f"worst position p = {worst:.2g}): the page builder or method is biased "
                    "towards one ranker",
                )
            )
        if result.users < MIN_USERS:
            alerts.append(
                Alert(
                    AlertKind.FEW_USERS,
                    result.label,
                    f"only {_users(result.users)}: the user-clustered tests need more than "
                    f"{MIN_USERS} to be trusted",
                )
            )
        if result.impressions and result.excluded / (result.impressions + result.excluded) > 0.01:
            alerts.append(
                Alert(
                    AlertKind.EXCLUDED,
                    result.label,
                    f"{result.excluded:,} impressions excluded (ranker failures or other "
                    "reasons): if one ranker fails more, the comparison is biased",
                )
            )
        if result.method == "balanced":
            alerts.extend(_balanced_alerts(result, team_draft))
    for ab_result in ab:
        if ab_result.srm is not None and ab_result.srm.mismatch:
            counts = ", ".join(
                f"{arm} {n:,} (expected {e:,.0f})"
                for arm, n, e in zip(
                    ab_result.srm.arms, ab_result.srm.counts, ab_result.srm.expected, strict=True
                )
            )
            alerts.append(
                Alert(
                    AlertKind.SAMPLE_RATIO_MISMATCH,
                    ab_result.label,
                    f"sample ratio mismatch (p = {ab_result.srm.p_value:.2g} < {SRM_THRESHOLD}): "
                    f"{counts}; the split is broken, so no metric of this test can be trusted",
                )
            )
        if min(ab_result.users) < MIN_USERS:
            alerts.append(
                Alert(
                    AlertKind.FEW_USERS,
                    ab_result.label,
                    f"only {_users(min(ab_result.users))} in an arm: Welch's test needs more than "
                    f"{MIN_USERS} per arm to be trusted",
                )
            )
        if ab_result.srm is None:
            alerts.append(
                Alert(
                    AlertKind.SAMPLE_RATIO_MISMATCH,
                    ab_result.label,
                    "sample ratio not checked: the logged arms do not match the designed ones",
                )
            )
    for size in sizes:
        pair_users = size.analytic_users[0]
        if size.design is Design.INTERLEAVING and size.users < pair_users:
            decided = any(
                p.winner is not None
                for r in interleaving
                if r.label == size.experiment
                for p in r.pairs
                if (p.a, p.b) == (size.a, size.b)
            )
            if not decided:
                alerts.append(
                    Alert(
                        AlertKind.UNDERPOWERED,
                        size.experiment,
                        f"no decision on {size.a} vs {size.b}: {_users(size.users)}, but 80% "
                        f"power at the observed effect needs {_count(pair_users)}",
                    )
                )
    for v in verdicts:
        if v.agrees is False:
            alerts.append(
                Alert(
                    AlertKind.WRONG_WINNER,
                    v.experiment,
                    f"{v.design} names {v.decided} the winner, but the truth favours {v.truth}",
                )
            )
    alerts.extend(_design_disagreements(interleaving, ab))
    order = {kind: i for i, kind in enumerate(AlertKind)}
    return tuple(sorted(alerts, key=lambda x: (not x.severe, order[x.kind], x.experiment)))


def _balanced_alerts(
    result: InterleavingResult, team_draft: Sequence[InterleavingResult]
) -> list[Alert]:
    """Balanced interleaving is always flagged; disagreeing with team-draft, severely."""
    out = []
    for pair in result.pairs:
        compared = ""
        for other in team_draft:
            for td in other.pairs:
                if {td.a, td.b} != {pair.a, pair.b}:
                    continue
                td_delta = (1 if td.a == pair.a else -1) * td.preference.delta
                compared = (
                    f" (here δ = {pair.preference.delta:+.4f} for {pair.a} over {pair.b}, "
                    f"team-draft {other.label}: {td_delta:+.4f})"
                )
                opposite = td.winner is None and td_delta * pair.preference.delta < 0
                if pair.winner is not None and (
                    (td.winner is not None and td.winner != pair.winner) or opposite
                ):
                    out.append(
                        Alert(
                            AlertKind.DESIGNS_DISAGREE,
                            result.label,
                            f"balanced interleaving prefers {pair.winner} but team-draft "
                            f"({other.label}) does not: balanced is biased by design; trust "
                            "team-draft",
                        )
                    )
        out.append(
            Alert(
                AlertKind.BALANCED_BIAS,
                result.label,
                "balanced interleaving is biased by design: with similar lists it can credit "
                f"one ranker even under random clicks{compared}; decide with team-draft",
            )
        )
    return out


def _design_disagreements(
    interleaving: Sequence[InterleavingResult], ab: Sequence[ABResult]
) -> list[Alert]:
    out = []
    for result in interleaving:
        if result.method == "balanced":
            continue  # warned about separately
        for pair in result.pairs:
            if pair.winner is None:
                continue
            for ab_result in ab:
                against = [
                    c.metric
                    for c in ab_result.comparisons
                    if {c.control, c.treatment} == {pair.a, pair.b}
                    and _ab_winner(c) not in (None, pair.winner)
                ]
                if against:
                    out.append(
                        Alert(
                            AlertKind.DESIGNS_DISAGREE,
                            result.label,
                            f"{result.method} prefers {pair.winner}, but A/B "
                            f"{ab_result.label} significantly favours the other ranker on "
                            f"{', '.join(against)}",
                        )
                    )
    return out


def _uncompacted(segments: int) -> str:
    held = "a journal segment holds" if segments == 1 else f"{segments} journal segments hold"
    return (
        f"{held} events not yet compacted to Parquet, which this report may leave out (a "
        "server compacts its journal as it runs and when it stops)"
    )


def _users(n: int) -> str:
    return "1 user" if n == 1 else f"{n:,} users"


def _count(x: float) -> str:
    if not math.isfinite(x):
        return "an unbounded number (no effect observed, or too few users to measure its spread)"
    return f"about {x:,.0f}"


# --------------------------------------------------------------------------------------------
# The report


def build_report(
    logdir: str | os.PathLike[str],
    *,
    alpha: float = 0.05,
    seed: int = 0,
    resamples: int = 1000,
    plots: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Analyse every experiment of a log directory.

    Args:
        logdir: The log directory (see `analysis.schema`).
        alpha: Significance level of every test; intervals have level 1 - alpha.
        seed: Seed of the bootstrap and the power-curve simulations.
        resamples: Bootstrap resamples per preference interval.
        plots: Compute what only the figures need (clicks by position); `write_html` draws
            figures only for a report built with plots.
        progress: Called with a short description as each stage starts.

    Returns:
        The report.

    Raises:
        ValueError: If alpha is not in (0, 1) or resamples < 1.
        ReportError: If the log directory is missing, empty or unreadable.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    started = time.perf_counter()
    root = Path(logdir)
    specs = _specs(root)
    # Counted before any scan: a compaction during the report moves events into Parquet
    # after the scans, and deletes their segments before a later count would see them.
    uncompacted = uncompacted_segments(root)
    truth = read_truth(root)
    say = progress or (lambda _: None)
    interleaving: list[InterleavingResult] = []
    ab: list[ABResult] = []
    missing: list[ExperimentSpec] = []
    sizes: list[SampleSize] = []
    ab_sizes: list[SampleSize] = []
    for spec in specs:
        label = _label(spec)
        try:
            if spec.design is Design.INTERLEAVING:
                say(f"interleaving {label}: outcomes, preference, balance")
                found = _interleaving(
                    root, spec, alpha=alpha, seed=seed, resamples=resamples, plots=plots
                )
                if found is None:
                    missing.append(spec)
                    continue
                result, totals = found
                interleaving.append(result)
                say(f"interleaving {label}: power curves")
                for pair in result.pairs:
                    sizes.append(
                        _interleaving_size(
                            result, pair, totals[(pair.a, pair.b)], truth, alpha=alpha, seed=seed
                        )
                    )
            else:
                say(f"A/B {label}: metrics and sample ratio")
                found_ab = _ab(root, spec, alpha=alpha, plots=plots)
                if found_ab is None:
                    missing.append(spec)
                    continue
                ab_result, arms = found_ab
                ab.append(ab_result)
                say(f"A/B {label}: power curves")
                ab_sizes.extend(_ab_sizes(ab_result, arms, truth, alpha=alpha, seed=seed))
        except ReportError:
            raise
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise ReportError(
                f"cannot read the log of {label} in {root}: {_one_line(exc)}"
            ) from exc
        except ValueError as exc:
            raise ReportError(f"cannot analyse {label}: {_one_line(exc)}") from exc
    if not interleaving and not ab:
        waiting = f"; {_uncompacted(uncompacted)}" if uncompacted else ""
        raise ReportError(
            f"no impressions logged for any of the {len(specs)} experiments in {root}{waiting}"
        )
    sizes.extend(ab_sizes)
    ratios = tuple(
        _ratio(a, il)
        for il in sizes
        if il.design is Design.INTERLEAVING
        for a in ab_sizes
        if _same_pair(a, il)
    )
    verdicts = _verdicts(interleaving, ab, truth) if truth else ()
    report = Report(
        logdir=str(root),
        alpha=alpha,
        seed=seed,
        resamples=resamples,
        plots=plots,
        interleaving=tuple(interleaving),
        ab=tuple(ab),
        sample_sizes=tuple(sizes),
        ratios=ratios,
        truth=truth,
        verdicts=verdicts,
        agreement=_agreement(verdicts),
        alerts=_alerts(interleaving, ab, sizes, verdicts, missing, uncompacted),
        headline=_headline(interleaving, sizes, truth),
        seconds=time.perf_counter() - started,
    )
    return report


# --------------------------------------------------------------------------------------------
# HTML


def _css() -> str:
    from importlib.resources import files

    return files("analysis").joinpath("templates/report.css").read_text(encoding="utf-8")


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _interval(low: float, high: float) -> str:
    """ "[low, high]", or "[–]" where there is none (fewer than two users)."""
    if math.isnan(low) or math.isnan(high):
        return "[–]"
    return f"[{low:+.4f}, {high:+.4f}]"


def _p(p: float) -> str:
    if math.isnan(p):
        return "–"
    if p < 1e-300:
        return "&lt; 1e-300"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def _q(x: float | None) -> str:
    if x is None:
        return "not reached"
    if not math.isfinite(x):
        return "∞"
    return f"{x:,.0f}"


def _ratio_text(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:,.0f}×" if x >= 10 else f"{x:.1f}×"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric_from: int = 1) -> str:
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else ""}">{_e(h)}</th>'
        for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else ""}">{cell}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="wide"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(name: str | None, caption: str) -> str:
    if name is None:
        return ""
    return (
        f'<figure><img src="{_e(name)}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _headline_html(report: Report) -> str:
    h = report.headline
    if h is None:
        ab_only = ", ".join(r.label for r in report.ab)
        return (
            '<section class="headline"><h2>No interleaving experiment</h2>'
            f"<p>Only A/B experiments ({_e(ab_only)}) are in this log: see below.</p></section>"
        )
    level = int(POWER_LEVELS[0] * 100), int(POWER_LEVELS[1] * 100)
    if h.winner:
        title = f"{_e(h.winner)} beats {_e(h.b if h.winner == h.a else h.a)}"
    else:
        title = f"No significant winner between {_e(h.a)} and {_e(h.b)}"
    decisive = h.wins + h.losses
    share = f"{h.wins / decisive:.1%}" if decisive else "–"
    lines = [
        f'<p class="verdict">{title}</p>',
        f'<p class="sub">{_e(h.method)} interleaving ({_e(h.experiment)}): '
        f"δ<sub>AB</sub> = {h.delta:+.4f} {_interval(*h.ci)}, "
        f"p = {_p(h.p_value)} (user-clustered t-test, α = {report.alpha:g}). "
        f"{_e(h.a)} won {h.wins:,} impressions, {_e(h.b)} {h.losses:,}, {h.ties:,} ties: "
        f"{_e(h.a)} took {share} of the decided ones.</p>",
    ]
    if report.truth is not None and h.truth is not None:
        if h.winner is None:
            verdict = "no decision yet"
            kind = "mild"
        elif h.winner == h.truth:
            verdict = "the winner is the truly better ranker"
            kind = "good"
        else:
            verdict = "the winner is NOT the truly better ranker"
            kind = "bad"
        lines.append(
            f'<p class="truth {kind}">Truth ({_e(report.truth.metric)}): {_e(h.truth)} is '
            f"better; {verdict}.</p>"
        )
    il80, src80 = h.interleaving.queries(0)
    il95, _ = h.interleaving.queries(1)
    cards = [
        f'<div class="card"><div class="big">{_q(il80)}</div><div>queries for {level[0]}% power '
        f"with {_e(h.method)} interleaving ({_q(il95)} for {level[1]}%)</div></div>"
    ]
    if h.ab is not None and h.ratio is not None:
        ab80, _ = h.ab.queries(0)
        ab95, _ = h.ab.queries(1)
        cards.append(
            f'<div class="card"><div class="big">{_q(ab80)}</div><div>queries for {level[0]}% '
            f"power with an A/B test on {_e(h.ab.test)}, its most sensitive metric"
            f"{' (it needs relevance judgments)' if h.ab.test == 'success' else ''} "
            f"({_q(ab95)} for {level[1]}%)</div></div>"
        )
        (r80, s80), (r95, s95) = h.ratio
        cards.append(
            f'<div class="card accent"><div class="big">{_ratio_text(r80)}</div><div>as many '
            f"queries for A/B as for interleaving at {level[0]}% power ({_ratio_text(r95)} at "
            f"{level[1]}%; {_e(s80)}{'' if s80 == s95 else '/' + _e(s95)})</div></div>"
        )
    else:
        why = (
            "no A/B metric on this pair moves towards the better ranker"
            if h.paired
            else "no A/B experiment compares these two rankers"
        )
        cards.append(
            f'<div class="card"><div class="big">–</div><div>{why}, so no ratio</div></div>'
        )
    note = (
        f"Queries needed are {src80} estimates at the observed effect; see "
        '<a href="#sample-sizes">sample sizes</a>.'
    )
    return (
        '<section class="headline">'
        + "".join(lines)
        + f'<div class="cards">{"".join(cards)}</div><p class="note">{note}</p></section>'
    )


def _alerts_html(report: Report) -> str:
    if not report.alerts:
        return '<section><h2>Warnings</h2><p class="ok">None: no check raised a flag.</p></section>'
    items = "".join(
        f'<li class="{"severe" if a.severe else "mild"}"><span class="tag">'
        f"{_e(a.kind.replace('_', ' '))}</span> <b>{_e(a.experiment)}</b> {_e(a.message)}</li>"
        for a in report.alerts
    )
    return f'<section id="warnings"><h2>Warnings</h2><ul class="alerts">{items}</ul></section>'


def _preference_html(report: Report, figure: str | None, sequential: str | None) -> str:
    if not report.interleaving:
        return ""
    multileave = any(len(r.pairs) > 1 for r in report.interleaving)
    rows = []
    for r in report.interleaving:
        for p in r.pairs:
            pref = p.preference
            seq = p.sequential
            if not seq.p_values:
                sequential_cell = "–"
            elif seq.rejected_at is None:
                sequential_cell = f"{_p(seq.p_values[-1])}<br><small>not rejected</small>"
            else:
                sequential_cell = (
                    f"{_p(seq.p_values[-1])}<br><small>rejects on day {seq.rejected_at + 1}</small>"
                )
            cells = [
                f"{_e(r.label)}<br><small>{_e(r.method)}</small>",
                f"{_e(p.a)} vs {_e(p.b)}",
                f"{pref.impressions:,}<br><small>{pref.users:,} users</small>",
                f"{pref.wins:,} / {pref.losses:,} / {pref.ties:,}",
                f"{pref.delta:+.4f}<br><small>{_interval(pref.ci_low, pref.ci_high)}</small>",
                _p(pref.p_t),
            ]
            if multileave:
                cells.append(_p(p.p_adjusted) if len(r.pairs) > 1 else "–")
            cells += [
                _p(pref.p_sign),
                sequential_cell,
                f"<b>{_e(p.winner)}</b>" if p.winner else "none",
            ]
            rows.append(cells)
    header = [
        "experiment",
        "pair (a vs b)",
        "impressions",
        "a wins / b wins / ties",
        f"δ_AB [{100 * (1 - report.alpha):g}% CI]",
        "p (t-test)",
    ]
    if multileave:
        header.append("p (Holm)")
    header += ["p (sign)", "p (mSPRT, daily)", "winner"]
    return (
        '<section id="preference"><h2>Preference</h2>'
        "<p>δ<sub>AB</sub> = (wins<sub>a</sub> + ties/2)/n − 1/2 per method and pair: positive "
        "favours <i>a</i>. Intervals are user-clustered bootstrap percentiles; the "
        "user-clustered t-test decides the winner"
        + (" (Holm-adjusted across a multileave's pairs)" if multileave else "")
        + ". The mSPRT p-value stays valid however often the experiment is looked at: it is "
        "shown after the last daily look, with the day it first fell below α.</p>"
        + _figure(
            figure,
            "Preference per method and pair with its interval; A/B effects oriented so "
            "right favours the treatment (grey: not significant)",
        )
        + _table(header, rows, numeric_from=2)
        + _figure(sequential, "Always-valid (mSPRT) p-value after each daily look")
        + "</section>"
    )


def _ab_html(report: Report) -> str:
    if not report.ab:
        return ""
    parts = ['<section id="ab"><h2>A/B tests</h2>']
    for r in report.ab:
        users = ", ".join(
            f"{_e(arm)} {n:,}" for arm, n in zip(r.spec.rankers, r.users, strict=True)
        )
        parts.append(
            f"<h3>{_e(r.label)}</h3><p>{r.impressions:,} impressions; users: {users}. "
            "Welch's t-test on per-user means (users are randomised, so users are the unit).</p>"
        )
        rows = [
            (
                _e(c.metric) + ("" if HIGHER_IS_BETTER[Metric(c.metric)] else " (lower is better)"),
                f"{_e(c.control)} → {_e(c.treatment)}",
                f"{c.control_mean:.4f}",
                f"{c.treatment_mean:.4f}",
                f"{c.effect:+.4f}",
                f"{100 * c.lift:+.2f}%" if math.isfinite(c.lift) else "–",
                _interval(c.ci_low, c.ci_high),
                _p(c.p_value),
                f"<b>{_e(_ab_winner(c))}</b>" if _ab_winner(c) else "none",
            )
            for c in r.comparisons
        ]
        parts.append(
            _table(
                (
                    "metric",
                    "control → treatment",
                    "control",
                    "treatment",
                    "effect",
                    "lift",
                    f"{100 * (1 - report.alpha):g}% CI",
                    "p",
                    "favours",
                ),
                rows,
                numeric_from=2,
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _by_pair(sizes: Iterable[SampleSize]) -> dict[frozenset[str], list[SampleSize]]:
    out: dict[frozenset[str], list[SampleSize]] = {}
    for size in sizes:
        out.setdefault(frozenset((size.a, size.b)), []).append(size)
    return out


def _ratio_matrix(report: Report, pair: frozenset[str]) -> str:
    """A/B : interleaving ratios on one pair: interleaving tests down, A/B metrics across."""
    ratios = [r for r in report.ratios if frozenset((r.ab.a, r.ab.b)) == pair]
    if not ratios:
        return ""
    metrics = list(dict.fromkeys((r.ab.test, r.ab.experiment) for r in ratios))
    tests = list(dict.fromkeys((r.interleaving.test, r.interleaving.experiment) for r in ratios))
    several = len({e for _, e in metrics}) > 1
    lookup = {
        ((r.interleaving.test, r.interleaving.experiment), (r.ab.test, r.ab.experiment)): r
        for r in ratios
    }
    rows = []
    for test in tests:
        cells = [f"{_e(test[0])}<br><small>{_e(test[1])}</small>"]
        for metric in metrics:
            r = lookup.get((test, metric))
            if r is None:
                cells.append("–")
                continue
            (r80, s80), (r95, s95) = r.ratio(0), r.ratio(1)
            cells.append(
                f"{_ratio_text(r80)}{'' if s80 == 'empirical' else '*'}<br><small>"
                f"{_ratio_text(r95)}{'' if s95 == 'empirical' else '*'} at 95%</small>"
            )
        rows.append(cells)
    header = ["interleaving / A/B"] + [m + (f" ({e})" if several else "") for m, e in metrics]
    return _table(header, rows)


def _sizes_html(report: Report, figure: str | None) -> str:
    if not report.sample_sizes:
        return ""
    lv = int(POWER_LEVELS[0] * 100), int(POWER_LEVELS[1] * 100)
    parts = []
    for pair, sizes in _by_pair(report.sample_sizes).items():
        a, b = sorted(pair)
        rows = []
        for s in sizes:
            e80, e95 = s.empirical_queries
            a80, a95 = s.analytic_queries
            reach = "–" if s.curve is None else _q(s.curve.users[-1] * s.curve.impressions_per_user)
            rows.append(
                (
                    f"{_e(s.label)}<br><small>{_e(s.experiment)}</small>",
                    _e(s.favours or "–"),
                    f"{s.users:,}",
                    f"{s.impressions_per_user:.1f}",
                    _q(a80),
                    _q(a95),
                    _q(e80) if s.curve else "–",
                    _q(e95) if s.curve else "–",
                    reach,
                )
            )
        table = _table(
            (
                "design / test",
                "observed favours",
                "users",
                "queries/user",
                f"analytic {lv[0]}%",
                f"analytic {lv[1]}%",
                f"empirical {lv[0]}%",
                f"empirical {lv[1]}%",
                "largest simulated",
            ),
            rows,
            numeric_from=2,
        )
        matrix = _ratio_matrix(report, pair)
        parts.append(
            f"<h3>{_e(a)} vs {_e(b)}</h3>"
            + table
            + (
                "<p>A/B : interleaving, queries needed for "
                f"{lv[0]}% power (* where a power curve stopped short: the analytic ratio):</p>"
                + matrix
                if matrix
                else ""
            )
        )
    return (
        '<section id="sample-sizes"><h2>Sample sizes</h2>'
        f"<p>Queries (impressions) each design needs to find the better ranker with {lv[0]}% and "
        f"{lv[1]}% power at α = {report.alpha:g}. <i>Analytic</i>: statsmodels power at the "
        "observed effect and variance. <i>Empirical</i>: the observed users are the "
        f"population; {POWER_EXPERIMENTS} experiments of each size (at least "
        f"{MIN_POWER_EXPERIMENTS} for very large ones) are drawn from them with "
        "replacement and tested, and the curve counts those significant in the right "
        'direction (a significant result the wrong way is a miss). "Not reached" means the '
        'curve, capped to bound its cost, stopped below that power; "∞" that no effect was '
        "observed.</p>"
        + _figure(figure, "Power against queries: every A/B metric against interleaving")
        + "".join(parts)
        + (
            ""
            if report.ratios
            else "<p>No A/B and interleaving experiments compare the same two rankers: no "
            "ratio.</p>"
        )
        + "</section>"
    )


def _truth_html(report: Report) -> str:
    if report.truth is None:
        return (
            '<section id="truth"><h2>Agreement with the truth</h2><p>This log has no '
            "<code>truth.json</code> (served logs never do), so agreement with the true ranker "
            "quality cannot be checked.</p></section>"
        )
    t = report.truth
    known = ", ".join(f"{_e(name)} {value:.4f}" for name, value in t.utilities)
    rows = [
        (
            _e(a.design),
            f"{a.agree} / {a.total}",
            str(a.wrong),
            str(a.no_decision),
            f"{100 * a.rate:.0f}%" if a.total else "–",
        )
        for a in report.agreement
    ]
    utility = dict(t.utilities)

    def gap(v: Verdict) -> str:
        better, worse = utility[v.truth], utility[v.b if v.truth == v.a else v.a]
        return f"{100 * (better - worse) / abs(worse):.2f}%" if worse else "–"

    verdicts = [
        (
            _e(v.design),
            _e(v.experiment),
            f"{_e(v.a)} vs {_e(v.b)}",
            _e(v.truth),
            gap(v),
            _e(v.decided or "no decision"),
            "✓" if v.agrees else ("✗" if v.agrees is False else "–"),
        )
        for v in report.verdicts
    ]
    return (
        '<section id="truth"><h2>Agreement with the truth</h2>'
        f"<p>True utility ({_e(t.metric)}{': ' + _e(t.description) if t.description else ''}): "
        f"{known}. A design agrees when its significant winner is the truly better ranker; "
        "no decision counts as not agreeing.</p>"
        + _table(("design", "agree", "wrong", "no decision", "agreement rate"), rows)
        + "<details><summary>Every decision (the true gap is the better ranker's relative "
        "lead in true utility: a tiny gap is close to a tie, where no decision is the right "
        "answer)</summary>"
        + _table(
            ("design", "experiment", "pair", "truly better", "true gap", "decided", ""),
            verdicts,
            numeric_from=9,
        )
        + "</details></section>"
    )


def _diagnostics_html(report: Report, clicks_figure: str | None, balance_figure: str | None) -> str:
    parts = ['<section id="diagnostics"><h2>Diagnostics</h2>']
    if report.interleaving:
        parts.append("<h3>Team balance</h3>")
        parts.append(
            f"<p>A fair method gives every team each position equally often. Flagged at "
            f"p &lt; {BALANCE_ALPHA} (Holm across positions).</p>"
        )
        rows = []
        for r in report.interleaving:
            fp = r.first_pick
            shares = " / ".join(
                f"{_e(name)} {c / fp.impressions:.3f}" if fp.impressions else "–"
                for name, c in zip(r.spec.rankers, fp.counts, strict=True)
            )
            worst = min(r.balance.positions, key=lambda b: b.p_adjusted, default=None)
            rows.append(
                (
                    _e(r.label),
                    _e(r.method),
                    shares,
                    _p(fp.p_value),
                    "–" if worst is None else f"{worst.position + 1}: {_p(worst.p_adjusted)}",
                    _balance_status(r),
                )
            )
        parts.append(
            _table(
                (
                    "experiment",
                    "method",
                    "first pick share",
                    "first pick p",
                    "worst position (rank: p Holm)",
                    "",
                ),
                rows,
                numeric_from=3,
            )
        )
        parts.append(_figure(balance_figure, "Share of each position held by each team"))
    if report.ab:
        parts.append("<h3>Sample ratio</h3>")
        srm_rows: list[tuple[str, ...]] = []
        for ab in report.ab:
            srm = ab.srm
            if srm is None:
                srm_rows.append((_e(ab.label), "–", "–", "–", "not checked"))
                continue
            srm_rows.append(
                (
                    _e(ab.label),
                    " / ".join(f"{_e(a)} {n:,}" for a, n in zip(srm.arms, srm.counts, strict=True)),
                    " / ".join(f"{e:,.0f}" for e in srm.expected),
                    _p(srm.p_value),
                    "<b>mismatch</b>" if srm.mismatch else "ok",
                )
            )
        parts.append(
            f"<p>Units per arm against the designed weights (chi-square, flagged at p &lt; "
            f"{SRM_THRESHOLD}); counted from the assignment log when there is one.</p>"
            + _table(("experiment", "units", "expected", "p", ""), srm_rows, numeric_from=3)
        )
    if clicks_figure is not None:
        parts.append("<h3>Clicks by position</h3>")
        parts.append(
            "<p>Click-through rate at each position for each interleaving team and A/B arm "
            f"(on a hash sample of at most {CLICK_SAMPLE:,} impressions per experiment).</p>"
        )
        parts.append(_figure(clicks_figure, "Click-through rate by position"))
    parts.append("</section>")
    return "".join(parts)


def _balance_status(result: InterleavingResult) -> str:
    unbalanced = result.first_pick.unbalanced or result.balance.unbalanced
    if result.method not in TEAM_BALANCED_METHODS:
        return "uneven (expected: not fair by design)" if unbalanced else "ok (not required)"
    return "<b>unbalanced</b>" if unbalanced else "ok"


def _methods_html(report: Report) -> str:
    lv = int(POWER_LEVELS[0] * 100), int(POWER_LEVELS[1] * 100)
    truth_dir = (
        "the truly better ranker (truth.json)"
        if report.truth
        else "the direction of the full-sample effect (no truth.json)"
    )
    items = [
        f"Significance level α = {report.alpha:g} for every test; intervals have level "
        f"{100 * (1 - report.alpha):g}%. Seed {report.seed}.",
        "Interleaving: one outcome per impression and ranker pair, credited by the method's own "
        "rule (analysis.outcomes); δ<sub>AB</sub> with a user-clustered percentile bootstrap "
        f"({report.resamples:,} resamples); the winner is decided by a t-test of the mean "
        "outcome with a cluster-robust (CR1) standard error over users; the sign test over "
        "decisive impressions is shown for reference (it ignores clustering).",
        "Multileaves: Holm's step-down correction across the pairs of each experiment.",
        "Sequential: a mixture SPRT on per-user mean outcomes, one look per UTC day, with the "
        "mixing scale tuned to the experiment's final number of users; its p-value is valid "
        "however often one looks.",
        "A/B: each metric averaged per user, arms compared with Welch's t-test on those means "
        "(clustered by user by construction); metrics are not corrected for multiplicity. "
        "Sample-ratio mismatch: chi-square against the designed weights.",
        f"Sample sizes at {lv[0]}% and {lv[1]}% power: analytic from statsmodels at the "
        f"observed effect; empirical from {POWER_EXPERIMENTS} (at least {MIN_POWER_EXPERIMENTS}) "
        "simulated experiments per size "
        f"drawn from the observed users, counting significant results towards {truth_dir}. "
        f"Each curve draws at most {POWER_DRAWS:,} users in all, so a very weak effect's curve "
        "may stop short of the target power, or not be simulated at all (then only the "
        "analytic size is given).",
        "Queries = users × mean impressions per user of the experiment. The headline ratio uses "
        "the most sensitive A/B metric that moves towards the preferred ranker, which makes it "
        "the ratio least favourable to interleaving.",
    ]
    return (
        '<section id="methods"><h2>Methods</h2><ul>'
        + "".join(f"<li>{x}</li>" for x in items)
        + "</ul></section>"
    )


def _caveats_html(report: Report) -> str:
    items = [
        "Sample sizes are computed at the effect this log observed. An observed effect is "
        "noisy and, when it was selected for being significant, tends to be an overestimate; "
        "treat the queries needed as an order of magnitude.",
        "Interleaving measures which ranker users prefer on the same page; A/B metrics measure "
        "what a whole experience does to behaviour. They can disagree legitimately, and only "
        "A/B measures absolute effects (e.g. on abandonment).",
        "Clicks per query counts clicks as good; more clicks can also mean users had to look "
        "harder.",
        "Success needs relevance judgments (qrels.parquet): a simulation knows them, a served "
        "log rarely does. When success is the most sensitive A/B metric, the ratio it gives is "
        "the one least favourable to interleaving, and one that a real A/B test could not "
        "reach without judging.",
        "Balanced interleaving is biased by design (with similar lists it can prefer one "
        "ranker under clicks that ignore the rankers; Hofmann, Whiteson and de Rijke 2011, and "
        "interleave/balanced.py); its results are shown for comparison, not for decisions.",
        "The empirical power curves resample the observed users: they assume future users "
        "behave like these ones.",
        "The sequential test's guarantee is asymptotic (the per-user variance is estimated).",
    ]
    if report.truth is not None:
        items.append(
            "This log is simulated: the click model decides how clicks reflect quality, so the "
            "agreement rate measures the designs under that model, not under real users."
        )
    else:
        items.append(
            "Without truth.json, no statement about which ranker is truly better is possible "
            "beyond what the tests say."
        )
    if not report.plots:
        items.append(
            "Built without plots (--no-plots): figures and clicks by position are left out."
        )
    return (
        '<section id="caveats"><h2>Caveats</h2><ul>'
        + "".join(f"<li>{_e(x)}</li>" for x in items)
        + "</ul></section>"
    )


def write_html(report: Report, out_dir: str | os.PathLike[str]) -> Path:
    """Write the report as `out_dir/index.html`, with PNG figures beside it.

    The page is self-contained apart from the figures, which it references relatively, so
    the folder can be moved or served as it is. Figures are drawn only for a report built
    with `plots=True`.

    Returns:
        The path of index.html.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, str | None] = dict.fromkeys(
        ("forest", "power", "clicks", "balance", "sequential")
    )
    if report.plots:
        from analysis import plots

        figures = {
            "forest": plots.forest(report, out / "preference.png"),
            "power": plots.power_curves(report, out / "power.png"),
            "clicks": plots.clicks_by_position(report, out / "clicks.png"),
            "balance": plots.team_balance(report, out / "balance.png"),
            "sequential": plots.sequential(report, out / "sequential.png"),
        }
    n_imps = sum(r.impressions for r in report.interleaving) + sum(r.impressions for r in report.ab)
    meta = (
        f"{len(report.interleaving)} interleaving and {len(report.ab)} A/B experiments · "
        f"{n_imps:,} impressions · α = {report.alpha:g} · seed {report.seed} · built "
        f"{report.generated_at:%Y-%m-%d %H:%M} UTC in {report.seconds:.1f} s"
    )
    nav = "".join(
        f'<a href="#{anchor}">{name}</a>'
        for anchor, name in (
            ("warnings", "Warnings"),
            ("preference", "Preference"),
            ("ab", "A/B"),
            ("sample-sizes", "Sample sizes"),
            ("truth", "Truth"),
            ("diagnostics", "Diagnostics"),
            ("methods", "Methods"),
            ("caveats", "Caveats"),
        )
    )
    body = "".join(
        (
            _headline_html(report),
            _alerts_html(report),
            _preference_html(report, figures["forest"], figures["sequential"]),
            _ab_html(report),
            _sizes_html(report, figures["power"]),
            _truth_html(report),
            _diagnostics_html(report, figures["clicks"], figures["balance"]),
            _methods_html(report),
            _caveats_html(report),
        )
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Braid report · {_e(Path(report.logdir).name)}</title>"
        f"<style>{_css()}</style></head><body><header><h1>Braid report</h1>"
        f'<p class="meta"><code>{_e(report.logdir)}</code> · {meta}</p><nav>{nav}</nav>'
        f"</header><main>{body}</main></body></html>\n"
    )
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary(report: Report, *, html_path: str | os.PathLike[str] | None = None) -> str:
    """The report's short terminal summary; see `analysis.summary.summary`."""
    from analysis.summary import summary as render

    return render(report, html_path=html_path)


def run_report(
    logdir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    alpha: float = 0.05,
    seed: int = 0,
    resamples: int = 1000,
    plots: bool = True,
) -> str:
    """Build the report, write its HTML and return the terminal summary (for the CLI).

    Shows the stage in progress on a terminal's stderr.

    Raises:
        ReportError: If the report cannot be built or written.
    """
    from rich.console import Console

    console = Console(stderr=True)

    def build(progress: Callable[[str], None] | None = None) -> Report:
        try:
            return build_report(
                logdir, alpha=alpha, seed=seed, resamples=resamples, plots=plots, progress=progress
            )
        except OSError as exc:
            raise ReportError(f"cannot read the log in {logdir}: {_one_line(exc)}") from exc
        except ValueError as exc:
            raise ReportError(_one_line(exc)) from exc

    def write(report: Report) -> Path:
        try:
            return write_html(report, out_dir)
        except OSError as exc:
            raise ReportError(f"cannot write the report to {out_dir}: {_one_line(exc)}") from exc
        except ValueError as exc:  # a figure matplotlib cannot draw
            raise ReportError(_one_line(exc)) from exc

    if console.is_terminal:
        with console.status("reading the log") as status:
            report = build(status.update)
            status.update("writing the HTML report")
            path = write(report)
    else:
        report = build()
        path = write(report)
    return summary(report, html_path=path)
