"""The dependent click model (DCM).

Guo, Liu and Wang, "Efficient multiple-click models in web search", WSDM 2009.

A cascade that allows several clicks. The user scans the page from the top and clicks a
result with probability attractiveness[grade]. Without a click they always go on; after a
click at position i they go on with probability continuation[i] and otherwise leave,
satisfied. So P(examine i + 1) = P(examine i) * (1 - attractiveness_i * (1 - continuation_i)).

Guo et al. estimate the parameters by counting up to the last click, which is biased: after
the last click the user may have gone on and skipped everything below. The fit here is the
exact maximum-likelihood estimate by EM over that one hidden event per page (did the user go
on after the last click?), with identical page tails merged so each iteration is cheap.
The continuation at the deepest position of the log is never observed (no position follows
it) and keeps its initial value 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Self

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
    last_click,
    log_em_end,
    probabilities,
    ratio,
)

__all__ = ["DependentClickModel"]

# Users go on after a click more often near the top of the page: 0.6 at rank 1 to 0.3 at 20.
DEFAULT_CONTINUATION: Final = tuple(round(0.6 - 0.3 * i / 19, 4) for i in range(20))


@dataclass(frozen=True, slots=True)
class DependentClickModel(ClickModel):
    """The dependent click model: a cascade that may go on after a click.

    Attributes:
        attractiveness: P(click | examined) per grade 0..G.
        continuation: P(go on | clicked) per position 0..n_positions - 1 (lambda in the
            paper). The defaults give 0.56 clicks per page of
            10 whose results are 70% grade 0, 20% grade 1 and 10% grade 2.
    """

    attractiveness: tuple[float, ...] = (0.02, 0.1, 0.3)
    continuation: tuple[float, ...] = DEFAULT_CONTINUATION

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "attractiveness", probabilities("attractiveness", self.attractiveness)
        )
        object.__setattr__(self, "continuation", probabilities("continuation", self.continuation))

    @property
    def n_positions(self) -> int:
        """The deepest page the model has a continuation probability for."""
        return len(self.continuation)

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
        """Fits attractiveness and continuation by EM over the hidden end of each session.

        See `ClickModel.fit`.
        """
        check_em_options(max_iter, tol)
        g, n_grades = fit_grades(grades, n_grades)
        split = LastClickSplit.of(g, as_clicks(clicks, g), n_grades)
        k = split.k
        has_click = split.last >= 0
        last_at = np.where(has_click, split.last, 0)

        attractiveness = np.full(n_grades, 0.5)
        continuation = np.full(k, 0.5)
        iteration, done = 0, False
        while not done and iteration < max_iter:
            iteration += 1
            lam = clipped(continuation)[last_at]
            # P(no click below the last click | the user went on) and the posterior that
            # they went on; a page without clicks was examined to the bottom.
            rest = np.exp(split.below @ np.log1p(-clipped(attractiveness)))
            went_on = np.where(has_click, lam * rest / (1.0 - lam + lam * rest), 1.0)
            examined = split.head_examined + (split.weight * went_on) @ split.below
            new_a = ratio(split.clicks_by_grade, examined, attractiveness)
            continued = split.head_clicks_by_position + np.bincount(
                split.last[has_click],
                weights=(split.weight * went_on)[has_click],
                minlength=k,
            )
            new_lam = ratio(continued, split.clicks_by_position, continuation)
            done = converged((attractiveness, continuation), (new_a, new_lam), tol)
            attractiveness, continuation = new_a, new_lam
        log_em_end(cls.__name__, iteration, done)
        # The deepest position is never followed by another, so it tells nothing.
        continuation[k - 1] = 0.5
        return cls(
            attractiveness=tuple(attractiveness.tolist()),
            continuation=tuple(continuation.tolist()),
        )

    def _stop_probabilities(self, attractiveness: FloatArray) -> FloatArray:
        """P(leave right after position i | examined i), per slot."""
        lam = np.asarray(self.continuation[: attractiveness.shape[1]])
        out: FloatArray = attractiveness * (1.0 - lam)
        return out

    def _sample(
        self, grades: IntArray, attractiveness: FloatArray, rng: np.random.Generator
    ) -> BoolArray:
        attracted = rng.random(grades.shape) < attractiveness
        lam = np.asarray(self.continuation[: grades.shape[1]])
        stop = attracted & (rng.random(grades.shape) >= lam)
        return clicks_until_stop(attracted, stop)

    def _click_probabilities(self, grades: IntArray, attractiveness: FloatArray) -> FloatArray:
        stay = 1.0 - self._stop_probabilities(attractiveness)
        out: FloatArray = examination_from_continuation(stay) * attractiveness
        return out

    def _log_likelihood(
        self, grades: IntArray, attractiveness: FloatArray, clicks: BoolArray
    ) -> FloatArray:
        k = grades.shape[1]
        last = last_click(clicks)
        positions = np.arange(k)
        head = positions <= last[:, None]
        lam = np.broadcast_to(np.asarray(self.continuation[:k]), grades.shape)
        skip = np.log1p(-attractiveness)
        head_terms = np.where(clicks, np.log(attractiveness), skip)
        went_on = clicks & (positions < last[:, None])
        head_terms = head_terms + np.where(went_on, np.log(lam), 0.0)
        ll = np.where(head, head_terms, 0.0).sum(axis=1)
        # The hidden end: after the last click the user left, or went on and skipped the rest.
        rest = np.exp(np.where(head, 0.0, skip).sum(axis=1))
        lam_last = np.take_along_axis(lam, np.maximum(last, 0)[:, None], axis=1)[:, 0]
        tail = np.where(last >= 0, np.log(1.0 - lam_last + lam_last * rest), np.log(rest))
        out: FloatArray = ll + tail
        return out
