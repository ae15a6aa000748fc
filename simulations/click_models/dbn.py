"""The dynamic Bayesian network click model (DBN).

Chapelle and Zhang, "A dynamic Bayesian network click model for web search ranking",
WWW 2009.

The user examines the top result. An examined result is clicked if it is attractive
(probability attractiveness[grade]); a clicked result satisfies the user with probability
satisfaction[grade], and a satisfied user leaves. An unsatisfied user (clicked or not)
goes on to the next position with probability gamma, the perseverance, and otherwise
abandons. So P(examine i + 1) = P(examine i) * gamma * (1 - attractiveness_i *
satisfaction_i). Attractiveness and satisfaction depend on the grade, not the position:
the paper's per-(query, document) parameters, tied by relevance grade.

Up to the last click of a page everything is known; below it the page either ended (the
user was satisfied or abandoned) or was examined and skipped to some depth. The fit is
maximum likelihood by EM over that hidden depth, computed with a backward pass per tail
(Chapelle and Zhang, section 4) and with identical page tails merged. Gamma is fitted
too rather than fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from simulations.click_models.base import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    BoolArray,
    ClickModel,
    FloatArray,
    IntArray,
    LastClickSplit,
    as_clicks,
    check_em_options,
    clicks_until_stop,
    clipped,
    converged,
    examination_from_continuation,
    fit_grades,
    grade_table,
    last_click,
    log_em_end,
    probabilities,
    probability,
    ratio,
)

__all__ = ["DynamicBayesianNetworkModel"]


@dataclass(frozen=True, slots=True)
class DynamicBayesianNetworkModel(ClickModel):
    """The DBN model: attractiveness and satisfaction per grade, perseverance gamma.

    Attributes:
        attractiveness: P(click | examined) per grade 0..G.
        satisfaction: P(leave satisfied | clicked) per grade 0..G.
        gamma: P(go on to the next position | examined and not satisfied). The defaults give
            0.44 clicks per page of 10 whose results are 70% grade 0, 20% grade 1 and 10%
            grade 2 in random order, 0.59 sorted by grade.
    """

    attractiveness: tuple[float, ...] = (0.03, 0.15, 0.4)
    satisfaction: tuple[float, ...] = (0.1, 0.3, 0.6)
    gamma: float = 0.85

    def __post_init__(self) -> None:
        a = probabilities("attractiveness", self.attractiveness)
        object.__setattr__(self, "attractiveness", a)
        s = probabilities("satisfaction", self.satisfaction, len(a))
        object.__setattr__(self, "satisfaction", s)
        object.__setattr__(self, "gamma", probability("gamma", self.gamma))

    @classmethod
    def fit(
        cls,
        grades: npt.ArrayLike,
        clicks: npt.ArrayLike,
        *,
        n_grades: int | None = None,
        max_iter: int = DEFAULT_MAX_ITER,
        tol: float = DEFAULT_TOL,
    ) -> Self:
        """Fits attractiveness, satisfaction and gamma by EM over the hidden end of each page.

        See `ClickModel.fit`.
        """
        check_em_options(max_iter, tol)
        g, n_grades = fit_grades(grades, n_grades)
        split = LastClickSplit.of(g, as_clicks(clicks, g), n_grades)
        k, m = split.k, split.last.shape[0]
        rows = np.arange(m)
        has_click = split.last >= 0
        last_at = np.maximum(split.last, 0)
        last_grade = split.grades[rows, last_at]
        w = split.weight
        # Positions run down axis 0 from here on, so each step over them is contiguous.
        tails = np.ascontiguousarray(split.grades.T)
        after = np.arange(k)[:, None] > split.last[None, :]
        below_by_grade = [(tails == grade) & after for grade in range(n_grades)]
        # A last click above the bottom is a chance to move on, unless the user was satisfied.
        last_can_move = w * (has_click & (split.last < k - 1))

        attractiveness = np.full(n_grades, 0.5)
        satisfaction = np.full(n_grades, 0.5)
        gamma = 0.5
        iteration, done = 0, False
        while not done and iteration < max_iter:
            iteration += 1
            skip = 1.0 - np.concatenate((clipped(attractiveness), (0.0, 0.0)))[tails]
            s_last = clipped(satisfaction)[np.maximum(last_grade, 0)]
            gm = float(clipped(np.asarray(gamma)))
            # rest[j]: P(no click at j or below | examined j); rest[k] = 1.
            rest = np.ones((k + 1, m))
            for j in range(k - 1, -1, -1):
                rest[j] = skip[j] * (1.0 - gm + gm * rest[j + 1])
            # The last click: satisfied, or not and then abandoned or skipped the rest.
            rest_below = rest[last_at + 1, rows]
            not_satisfied = (1.0 - s_last) * (1.0 - gm + gm * rest_below)
            p_satisfied = np.where(has_click, s_last / (s_last + not_satisfied), 0.0)
            p_next = np.where(
                has_click, (1.0 - s_last) * gm * rest_below / (s_last + not_satisfied), 1.0
            )
            # Forward over the tail: P(examined j | the page) = p_next times the chance of
            # going on from each skipped result in between (1 up to the last click).
            go_on = gm * rest[1:k] / (1.0 - gm + gm * rest[1:k])  # from j to j + 1
            step = np.where(after[:-1], go_on, 1.0)
            reach = np.ones((k, m))
            for j in range(1, k):
                np.multiply(reach[j - 1], step[j - 1], out=reach[j])
            examined = np.where(after, (w * p_next) * reach, 0.0)
            n_examined = split.head_examined + np.array(
                [examined.sum(where=b) for b in below_by_grade]
            )
            new_a = ratio(split.clicks_by_grade, n_examined, attractiveness)
            n_satisfied = np.bincount(
                last_grade[has_click], weights=(w * p_satisfied)[has_click], minlength=n_grades
            ).astype(np.float64)
            new_s = ratio(n_satisfied, split.clicks_by_grade, satisfaction)
            # Moves j -> j + 1 for j < k - 1: expected arrivals over expected chances.
            # (examined is 0 above and at the last click.)
            arrivals = examined[1:].sum()
            chances = examined[:-1].sum() + (last_can_move * (1.0 - p_satisfied)).sum()
            new_gamma = float(
                ratio(
                    np.asarray(split.head_transitions + arrivals),
                    np.asarray(split.head_transitions + chances),
                    np.asarray(gamma),
                )
            )
            done = converged(
                (attractiveness, satisfaction, np.asarray(gamma)),
                (new_a, new_s, np.asarray(new_gamma)),
                tol,
            )
            attractiveness, satisfaction, gamma = new_a, new_s, new_gamma
        log_em_end(cls.__name__, iteration, done)
        return cls(
            attractiveness=tuple(attractiveness.tolist()),
            satisfaction=tuple(satisfaction.tolist()),
            gamma=gamma,
        )

    def _stop_given_attracted(self, grades: IntArray) -> FloatArray:
        """P(leave right after a clicked slot): satisfied, or not and then abandoned."""
        s = grade_table(self.satisfaction)[grades]
        out: FloatArray = 1.0 - (1.0 - s) * self.gamma
        return out

    def _sample(
        self, grades: IntArray, attractiveness: FloatArray, rng: np.random.Generator
    ) -> BoolArray:
        attracted = rng.random(grades.shape) < attractiveness
        p_stop = np.where(attracted, self._stop_given_attracted(grades), 1.0 - self.gamma)
        stop = rng.random(grades.shape) < p_stop
        return clicks_until_stop(attracted, stop)

    def _click_probabilities(self, grades: IntArray, attractiveness: FloatArray) -> FloatArray:
        s = grade_table(self.satisfaction)[grades]
        stay = self.gamma * (1.0 - attractiveness * s)
        out: FloatArray = examination_from_continuation(stay) * attractiveness
        return out

    def _log_likelihood(
        self, grades: IntArray, attractiveness: FloatArray, clicks: BoolArray
    ) -> FloatArray:
        n, k = grades.shape
        gm = self.gamma
        s = grade_table(self.satisfaction)[grades]
        last = last_click(clicks)
        before = np.arange(k) < last[:, None]
        with np.errstate(divide="ignore"):
            went_on = np.where(
                clicks,
                np.log(attractiveness) + np.log1p(-s) + np.log(gm),
                np.log1p(-attractiveness) + np.log(gm),
            )
        ll = np.where(before, went_on, 0.0).sum(axis=1)
        # rest[:, j]: P(no click at j or below | examined j), restricted to below the last click.
        rest = np.ones((n, k + 1))
        for j in range(k - 1, -1, -1):
            rest[:, j] = (1.0 - attractiveness[:, j]) * (1.0 - gm + gm * rest[:, j + 1])
        rows = np.arange(n)
        last_at = np.maximum(last, 0)
        a_last, s_last = attractiveness[rows, last_at], s[rows, last_at]
        end = s_last + (1.0 - s_last) * (1.0 - gm + gm * rest[rows, last_at + 1])
        tail = np.where(last >= 0, np.log(a_last) + np.log(end), np.log(rest[:, 0]))
        out: FloatArray = ll + tail
        return out
