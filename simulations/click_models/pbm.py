"""The position-based click model (PBM).

Richardson, Dominowska and Ragno, "Predicting clicks: estimating the click-through rate for
new ads", WWW 2007; named and compared with the cascade model by Craswell, Zoeter, Taylor and
Ramsey, "An experimental comparison of click position-bias models", WSDM 2008 (their
"examination hypothesis").

A result is clicked if and only if its position is examined and it is attractive, two
independent events: P(click at i) = examination[i] * attractiveness[grade_i]. Clicks at
different positions are independent, so a page can have any number of them.

Only the product is identified by a log, so the fit pins examination[0] to 1 (the top
result is always looked at) and estimates the rest by EM over the hidden examination and
attraction of each non-clicked result (Chuklin, Markov and de Rijke, "Click Models for Web
Search", 2015, section 4.2). Everything the EM needs is the table of impressions and clicks
per (position, grade), so each iteration is tiny whatever the size of the log.
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
    as_clicks,
    check_em_options,
    clipped,
    converged,
    fit_grades,
    log_em_end,
    probabilities,
    ratio,
)

__all__ = ["PositionBasedModel"]

# Examination falls as rank**-0.7 down a 20-slot page: about 1, 0.62, 0.46, ..., 0.12.
DEFAULT_EXAMINATION: Final = tuple(round((i + 1) ** -0.7, 4) for i in range(20))


@dataclass(frozen=True, slots=True)
class PositionBasedModel(ClickModel):
    """The position-based model: click = examined (by position) and attracted (by grade).

    Attributes:
        attractiveness: P(attracted) per grade 0..G.
        examination: P(examined) per position 0..n_positions - 1. The defaults give 0.40
            clicks per page of 10 whose results are 70% grade 0, 20% grade 1 and 10% grade 2
            in random order, 0.65 sorted by grade.
    """

    attractiveness: tuple[float, ...] = (0.03, 0.18, 0.45)
    examination: tuple[float, ...] = DEFAULT_EXAMINATION

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "attractiveness", probabilities("attractiveness", self.attractiveness)
        )
        object.__setattr__(self, "examination", probabilities("examination", self.examination))

    @property
    def n_positions(self) -> int:
        """The deepest page the model has an examination probability for."""
        return len(self.examination)

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
        """Fits examination and attractiveness by EM, with examination[0] pinned to 1.

        See `ClickModel.fit`.
        """
        check_em_options(max_iter, tol)
        g, n_grades = fit_grades(grades, n_grades)
        c = as_clicks(clicks, g)
        k = g.shape[1]
        # The sufficient statistics: impressions and clicks per (position, grade).
        cell = np.arange(k) * n_grades + g
        graded = g >= 0
        shape = (k, n_grades)
        shown = np.bincount(cell[graded], minlength=k * n_grades).reshape(shape).astype(float)
        clicked = np.bincount(cell[graded & c], minlength=k * n_grades).reshape(shape)
        skipped = shown - clicked
        by_position, by_grade = shown.sum(axis=1), shown.sum(axis=0)

        examination = np.full(k, 0.5)
        examination[0] = 1.0  # a fixed point of the update: it stays 1
        attractiveness = np.full(n_grades, 0.5)
        iteration, done = 0, False
        while not done and iteration < max_iter:
            iteration += 1
            e, a = clipped(examination)[:, None], clipped(attractiveness)[None, :]
            no_click = 1.0 - e * a
            examined = clicked + skipped * (e * (1.0 - a) / no_click)
            attracted = clicked + skipped * (a * (1.0 - e) / no_click)
            new_e = ratio(examined.sum(axis=1), by_position, examination)
            new_e[0] = 1.0
            new_a = ratio(attracted.sum(axis=0), by_grade, attractiveness)
            done = converged((examination, attractiveness), (new_e, new_a), tol)
            examination, attractiveness = new_e, new_a
        log_em_end(cls.__name__, iteration, done)
        return cls(
            attractiveness=tuple(attractiveness.tolist()),
            examination=tuple(examination.tolist()),
        )

    def _click_probabilities(self, grades: IntArray, attractiveness: FloatArray) -> FloatArray:
        examination = np.asarray(self.examination[: grades.shape[1]])
        out: FloatArray = attractiveness * examination
        return out

    def _sample(
        self, grades: IntArray, attractiveness: FloatArray, rng: np.random.Generator
    ) -> BoolArray:
        p = self._click_probabilities(grades, attractiveness)
        out: BoolArray = rng.random(grades.shape) < p
        return out

    def _log_likelihood(
        self, grades: IntArray, attractiveness: FloatArray, clicks: BoolArray
    ) -> FloatArray:
        p = self._click_probabilities(grades, attractiveness)
        out: FloatArray = np.where(clicks, np.log(p), np.log1p(-p)).sum(axis=1)
        return out
