"""Live figures of running experiments, kept as mergeable per-unit sums.

Every impression and click updates sufficient statistics as it is logged, so the figures of
`GET /experiments/{id}` cost no scan of the log:

* Interleaving: for each ranker pair (a, b) and each unit, the sums `analysis.preference`
  needs (impressions, outcome total and total of squares, wins, losses, ties). An
  impression's outcome is the credit its clicks give under the experiment's method
  (`Credit.pairwise`); a click changes it, and the unit's sums move by the difference.
  From these: the preference with its user-clustered bootstrap interval and clustered
  t-test (`analysis.preference.preference_from_totals`) and the always-valid mSPRT p-value
  of the per-unit mean outcome (`analysis.sequential.msprt`), kept as its running minimum
  over every look taken (any sequence of looks keeps the guarantee).
* A/B: units, impressions, clicks and clicked impressions per arm, and the sample-ratio
  check of units per arm against the designed weights (`analysis.ab.sample_ratio_mismatch`).

Impressions marked `excluded` count as excluded and in nothing else. The figures are those of
the server's lifetime plus what it replayed from the log at start-up; the full analysis of a
log is ``python -m analysis report LOGDIR``.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import msgspec
import numpy as np

import interleave
from analysis.ab import sample_ratio_mismatch
from analysis.moments import Moments
from analysis.preference import UserTotals, preference_from_totals
from analysis.schema import Assignment, Design, ExperimentSpec, Impression
from analysis.sequential import msprt

__all__ = [
    "ArmFigures",
    "Figures",
    "LiveFigures",
    "PreferenceFigures",
    "RankerWins",
    "SampleRatioFigures",
    "Snapshot",
    "compute_figures",
]

logger = logging.getLogger(__name__)

Outcome = tuple[float, ...]
"""One impression's outcome per ranker pair, pairs in `combinations` order."""


class PreferenceFigures(msgspec.Struct, frozen=True):
    """The preference between two rankers (delta > 0 favours `a`).

    `ci_low`, `ci_high` (the user-clustered bootstrap interval) and `p_value` (the clustered
    t-test, which decides `winner`) are None while fewer than two users have seen the pair:
    neither can be computed from one user.
    """

    a: str
    b: str
    impressions: int
    users: int
    wins: int
    losses: int
    ties: int
    delta: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_sign: float
    p_sequential: float
    winner: str | None


class RankerWins(msgspec.Struct, frozen=True):
    """Impressions a ranker won outright."""

    ranker: str
    wins: int


class ArmFigures(msgspec.Struct, frozen=True):
    """One A/B arm."""

    arm: str
    units: int
    impressions: int
    clicks: int
    clicked_impressions: int
    ctr: float | None


class SampleRatioFigures(msgspec.Struct, frozen=True):
    """Units per arm against the designed weights (chi-square)."""

    counts: dict[str, int]
    expected: dict[str, float]
    p_value: float
    mismatch: bool


class Figures(msgspec.Struct, frozen=True):
    """The live figures of one experiment version."""

    version: int
    units: int
    impressions: int
    excluded: int
    clicks: int
    rankers: list[RankerWins]
    preferences: list[PreferenceFigures]
    arms: list[ArmFigures]
    srm: SampleRatioFigures | None


class _UnitSums(msgspec.Struct, gc=False):  # one per unit: untracked by the collector
    impressions: int = 0
    wins: int = 0
    losses: int = 0
    ties: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def move(self, old: float | None, new: float | None) -> None:
        for value, sign in ((old, -1), (new, 1)):
            if value is None:
                continue
            self.impressions += sign
            self.total += sign * value
            self.total_sq += sign * value * value
            if value > 0:
                self.wins += sign
            elif value < 0:
                self.losses += sign
            else:
                self.ties += sign


@dataclass(slots=True)
class _Arm:
    units: int = 0
    impressions: int = 0
    clicks: int = 0
    clicked: int = 0


@dataclass(slots=True)
class _Version:
    spec: ExperimentSpec
    method: interleave.Method | None
    pairs: tuple[tuple[int, int], ...]
    units: dict[str, int] = field(default_factory=dict)
    impressions: int = 0
    excluded: int = 0
    clicks: int = 0
    pair_units: list[dict[str, _UnitSums]] = field(default_factory=list)
    winners: list[int] = field(default_factory=list)
    arms: dict[str, _Arm] = field(default_factory=dict)
    p_sequential: list[float] = field(default_factory=list)
    no_clicks: Outcome = ()  # the outcome of an impression without clicks: 0 for each pair


class LiveFigures:
    """Per experiment version sums, updated by every logged event."""

    __slots__ = ("_versions",)

    def __init__(self) -> None:
        """Start with no experiment versions."""
        self._versions: dict[tuple[str, int], _Version] = {}

    def add_version(self, spec: ExperimentSpec) -> None:
        """Track an experiment version (a no-op if it is tracked)."""
        key = (spec.experiment_id, spec.version)
        if key in self._versions:
            return
        method = None
        pairs: tuple[tuple[int, int], ...] = ()
        if spec.design is Design.INTERLEAVING and spec.method is not None:
            method = interleave.get(spec.method, **dict(spec.options))
            pairs = tuple(combinations(range(len(spec.rankers)), 2))
        version = _Version(spec=spec, method=method, pairs=pairs)
        version.pair_units = [{} for _ in pairs]
        version.winners = [0] * len(spec.rankers)
        version.p_sequential = [1.0] * len(pairs)
        version.no_clicks = (0.0,) * len(pairs)
        version.arms = {name: _Arm() for name in spec.rankers} if method is None else {}
        self._versions[key] = version

    def assignment(self, record: Assignment) -> None:
        """Count a unit's first exposure to a treatment."""
        version = self._versions.get((record.experiment_id, record.experiment_version))
        if version is None:
            return
        version.units[record.treatment] = version.units.get(record.treatment, 0) + 1
        arm = version.arms.get(record.treatment)
        if arm is not None:
            arm.units += 1

    def impression(self, record: Impression) -> Outcome | None:
        """Count a new impression (no clicks yet); returns its outcome to keep for `click`."""
        version = self._versions.get((record.experiment_id, record.experiment_version))
        if version is None:
            return None
        if record.excluded is not None:
            version.excluded += 1
            return None
        version.impressions += 1
        if version.method is None:
            arm = version.arms.get(record.treatment)
            if arm is not None:
                arm.impressions += 1
            return None
        # No clicks yet: a tie under every credit rule (`interleave.Method.credit`), so each
        # pair's outcome is 0 and the method need not be asked; there is no outright winner.
        unit = record.unit_id
        for units in version.pair_units:
            sums = units.get(unit)
            if sums is None:
                sums = units[unit] = _UnitSums()
            sums.move(None, 0.0)
        return version.no_clicks

    def click(
        self,
        record: Impression,
        outcome: Outcome | None,
        clicked: Sequence[int],
        *,
        first: bool,
    ) -> Outcome | None:
        """Count a click on `record`, which now has clicks at `clicked`.

        Args:
            record: The impression clicked.
            outcome: Its outcome before this click (from `impression` or an earlier `click`).
            clicked: Every clicked position, this click's included.
            first: Whether this is the first click on the position (a repeat changes no
                outcome).

        Returns:
            The impression's new outcome.
        """
        version = self._versions.get((record.experiment_id, record.experiment_version))
        if version is None or record.excluded is not None:
            return outcome
        version.clicks += 1
        if version.method is None:
            arm = version.arms.get(record.treatment)
            if arm is not None:
                arm.clicks += 1
                if len(clicked) == 1 and first:
                    arm.clicked += 1
            return None
        if not first:
            return outcome
        return self._move(version, record, outcome, clicked)

    def _move(
        self,
        version: _Version,
        record: Impression,
        old: Outcome | None,
        clicked: Sequence[int],
    ) -> Outcome:
        assert version.method is not None
        page = interleave.Page(version.method.name, record.lists, record.doc_ids, record.teams)
        try:
            credit = version.method.credit(page, clicked)
        except (interleave.InterleaveError, ValueError, TypeError) as error:
            logger.debug("cannot credit impression %s: %s", record.impression_id, error)
            credit = None
        new = tuple(
            0.0 if credit is None else float(credit.pairwise[i][j]) for i, j in version.pairs
        )
        for p, units in enumerate(version.pair_units):
            sums = units.get(record.unit_id)
            if sums is None:
                sums = units[record.unit_id] = _UnitSums()
            sums.move(None if old is None else old[p], new[p])
        if old is not None:
            previous = _outright_winner(old, version.pairs, len(version.winners))
            if previous is not None:
                version.winners[previous] -= 1
        winner = _outright_winner(new, version.pairs, len(version.winners))
        if winner is not None:
            version.winners[winner] += 1
        return new

    def snapshot(self, spec: ExperimentSpec) -> Snapshot:
        """A copy of one version's sums (cheap), to compute `figures` from off the event loop."""
        self.add_version(spec)
        version = self._versions[(spec.experiment_id, spec.version)]
        pairs = []
        for p, (i, j) in enumerate(version.pairs):
            units = {u: s for u, s in version.pair_units[p].items() if s.impressions > 0}
            ordered = sorted(units)
            sums = [units[u] for u in ordered]
            totals = UserTotals(
                unit_ids=tuple(ordered),
                impressions=np.array([s.impressions for s in sums], dtype=np.int64),
                wins=np.array([s.wins for s in sums], dtype=np.int64),
                losses=np.array([s.losses for s in sums], dtype=np.int64),
                ties=np.array([s.ties for s in sums], dtype=np.int64),
                total=np.array([s.total for s in sums], dtype=np.float64),
                total_sq=np.array([max(s.total_sq, 0.0) for s in sums], dtype=np.float64),
            )
            pairs.append((spec.rankers[i], spec.rankers[j], totals, version.p_sequential[p]))
        return Snapshot(
            spec=spec,
            units=sum(version.units.values()),
            impressions=version.impressions,
            excluded=version.excluded,
            clicks=version.clicks,
            winners=tuple(version.winners) if version.method is not None else (),
            arms=tuple(
                ArmFigures(
                    arm=name,
                    units=arm.units,
                    impressions=arm.impressions,
                    clicks=arm.clicks,
                    clicked_impressions=arm.clicked,
                    ctr=arm.clicked / arm.impressions if arm.impressions else None,
                )
                for name, arm in version.arms.items()
            ),
            pairs=tuple(pairs),
        )

    def remember(self, figures: Figures, spec: ExperimentSpec) -> None:
        """Keep the always-valid p-values of a look, so later looks never report more."""
        version = self._versions.get((spec.experiment_id, spec.version))
        if version is None:
            return
        names = spec.rankers
        for p, (i, j) in enumerate(version.pairs):
            for found in figures.preferences:
                if (found.a, found.b) == (names[i], names[j]):
                    version.p_sequential[p] = min(version.p_sequential[p], found.p_sequential)

    def figures(self, spec: ExperimentSpec, *, resamples: int = 1000) -> Figures:
        """The figures of one experiment version, computed here (see `compute_figures`)."""
        found = compute_figures(self.snapshot(spec), resamples=resamples)
        self.remember(found, spec)
        return found


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """One experiment version's sums at one moment (see `LiveFigures.snapshot`)."""

    spec: ExperimentSpec
    units: int
    impressions: int
    excluded: int
    clicks: int
    winners: tuple[int, ...]
    arms: tuple[ArmFigures, ...]
    pairs: tuple[tuple[str, str, UserTotals, float], ...]


def compute_figures(snapshot: Snapshot, *, resamples: int = 1000) -> Figures:
    """The figures of a snapshot: a pure function, safe on a worker thread."""
    spec = snapshot.spec
    preferences = [
        _preference(spec, a, b, totals, previous, resamples)
        for a, b, totals, previous in snapshot.pairs
        if totals.users > 0
    ]
    srm = None
    if spec.design is Design.AB and sum(arm.units for arm in snapshot.arms) > 0:
        ratio = sample_ratio_mismatch(
            {arm.arm: arm.units for arm in snapshot.arms},
            dict(zip(spec.rankers, spec.weights, strict=True)),
        )
        srm = SampleRatioFigures(
            counts=dict(zip(ratio.arms, ratio.counts, strict=True)),
            expected=dict(zip(ratio.arms, ratio.expected, strict=True)),
            p_value=ratio.p_value,
            mismatch=ratio.mismatch,
        )
    return Figures(
        version=spec.version,
        units=snapshot.units,
        impressions=snapshot.impressions,
        excluded=snapshot.excluded,
        clicks=snapshot.clicks,
        rankers=[
            RankerWins(name, wins)
            for name, wins in zip(spec.rankers, snapshot.winners, strict=False)
        ],
        preferences=preferences,
        arms=list(snapshot.arms),
        srm=srm,
    )


def _preference(
    spec: ExperimentSpec, a: str, b: str, totals: UserTotals, previous: float, resamples: int
) -> PreferenceFigures:
    # The bootstrap is seeded by the experiment and pair: the same sums give the same interval.
    digest = hashlib.blake2b(
        f"{spec.experiment_id}\0{spec.version}\0{a}\0{b}".encode(), digest_size=8
    ).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    found = preference_from_totals(totals, a, b, rng=rng, resamples=resamples)
    means = totals.total / totals.impressions
    look = Moments(len(means), float(means.sum()), float(means @ means))
    p_sequential = min(previous, msprt([look]).p_values[-1])
    return PreferenceFigures(
        a=a,
        b=b,
        impressions=found.impressions,
        users=found.users,
        wins=found.wins,
        losses=found.losses,
        ties=found.ties,
        delta=found.delta,
        ci_low=_known(found.ci_low),
        ci_high=_known(found.ci_high),
        p_value=_known(found.p_t),
        p_sign=found.p_sign,
        p_sequential=p_sequential,
        winner=found.winner,
    )


def _known(value: float) -> float | None:
    """`value`, or None where it could not be computed (nan)."""
    return None if math.isnan(value) else value


def _outright_winner(
    outcome: Outcome, pairs: Sequence[tuple[int, int]], rankers: int
) -> int | None:
    """The ranker that beats every other on this impression, if one does."""
    beats = [0] * rankers
    for (i, j), value in zip(pairs, outcome, strict=True):
        if value > 0:
            beats[i] += 1
        elif value < 0:
            beats[j] += 1
    for ranker, count in enumerate(beats):
        if count == rankers - 1:
            return ranker
    return None
