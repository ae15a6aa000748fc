"""The cascade click model.

Craswell, Zoeter, Taylor and Ramsey, "An experimental comparison of click position-bias
models", WSDM 2008.

The user scans the page from the top. At each position they click with probability
attractiveness[grade] and, having clicked, stop; otherwise they go on to the next position.
So there is at most one click per page, and the probability of a click at position i is
attractiveness_i * prod_{j < i} (1 - attractiveness_j). An empty slot is passed over.

The maximum-likelihood fit is in closed form: every position up to and including the first
click was examined, nothing after it was, so attractiveness[g] is the number of clicks on
grade g over the number of examined results of grade g. A log from real users can hold more
than one click per page, which the cascade model cannot produce; the fit uses the first click
of each page and ignores the rest, as Craswell et al. do.
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
    as_clicks,
    check_em_options,
    clicks_until_stop,
    examination_from_continuation,
    first_click,
    fit_grades,
    probabilities,
    ratio,
)

__all__ = ["CascadeModel"]


@dataclass(frozen=True, slots=True)
class CascadeModel(ClickModel):
    """The cascade model: scan top-down, click if attracted, stop after the click.

    Attributes:
        attractiveness: P(click | examined) per grade 0..G. The default (3 grades) gives
            0.53 clicks per page of 10 whose results are 70% grade 0, 20% grade 1 and 10%
            grade 2.
    """

    attractiveness: tuple[float, ...] = (0.02, 0.12, 0.35)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "attractiveness", probabilities("attractiveness", self.attractiveness)
        )

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
        """Fits attractiveness by counting over the positions up to each first click.

        Closed form, so `max_iter` and `tol` are only checked. See `ClickModel.fit`.
        """
        check_em_options(max_iter, tol)
        g, n_grades = fit_grades(grades, n_grades)
        c = as_clicks(clicks, g)
        first = first_click(c)
        last_examined = np.where(first >= 0, first, g.shape[1] - 1)
        examined = (np.arange(g.shape[1]) <= last_examined[:, None]) & (g >= 0)
        first_clicked = g[first >= 0, first[first >= 0]]
        n_clicks = np.bincount(first_clicked, minlength=n_grades).astype(np.float64)
        n_examined = np.bincount(g[examined], minlength=n_grades).astype(np.float64)
        attractiveness = ratio(n_clicks, n_examined, np.full(n_grades, 0.5))
        return cls(attractiveness=tuple(attractiveness.tolist()))

    def _sample(
        self, grades: IntArray, attractiveness: FloatArray, rng: np.random.Generator
    ) -> BoolArray:
        attracted = rng.random(grades.shape) < attractiveness
        return clicks_until_stop(attracted, attracted)

    def _click_probabilities(self, grades: IntArray, attractiveness: FloatArray) -> FloatArray:
        out: FloatArray = examination_from_continuation(1.0 - attractiveness) * attractiveness
        return out

    def _log_likelihood(
        self, grades: IntArray, attractiveness: FloatArray, clicks: BoolArray
    ) -> FloatArray:
        first = first_click(clicks)
        positions = np.arange(grades.shape[1])
        before = positions < first[:, None]
        skipped = before | (first[:, None] < 0)
        terms = np.where(skipped, np.log1p(-attractiveness), 0.0)
        terms = np.where(positions == first[:, None], np.log(attractiveness), terms)
        out: FloatArray = terms.sum(axis=1)
        # A second click is impossible under the cascade model.
        out[np.count_nonzero(clicks, axis=1) > 1] = -np.inf
        return out
