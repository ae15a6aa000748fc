"""Statistics and reports over experiment logs (simulated or served), in one shared schema.

Modules, one concern each: `schema` (the log records and their polars schemas), `outcomes`
(logs to per-impression outcomes), `preference` (interleaving preference with a user-clustered
bootstrap, sign and clustered t-tests), `sequential` (always-valid p-values), `multiple` (Holm),
`balance` (team balance checks), `ab` (A/B metrics and sample-ratio mismatch), `power`
(analytic and empirical sample sizes), `moments` (mergeable sufficient statistics) and
`report` (`python -m analysis report LOGDIR --out DIR`).
"""

from __future__ import annotations

from analysis.ab import Metric, MetricComparison, SampleRatio, compare_arms, sample_ratio_mismatch
from analysis.moments import Moments
from analysis.outcomes import ab_outcomes, interleaving_outcomes
from analysis.preference import Preference, preference, preferences
from analysis.schema import (
    Assignment,
    Click,
    Design,
    ExperimentSpec,
    Impression,
    Kind,
    read_experiments,
    scan,
)

__all__ = [
    "Assignment",
    "Click",
    "Design",
    "ExperimentSpec",
    "Impression",
    "Kind",
    "Metric",
    "MetricComparison",
    "Moments",
    "Preference",
    "SampleRatio",
    "ab_outcomes",
    "compare_arms",
    "interleaving_outcomes",
    "preference",
    "preferences",
    "read_experiments",
    "sample_ratio_mismatch",
    "scan",
]
