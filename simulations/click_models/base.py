"""The click-model plug point and the array checks every model shares.

A click model turns a page of relevance grades into clicks. Grades form an integer array of
shape (n_impressions, k): one row per page shown, one column per position (0 = top), grade
0..G for a result and -1 for an empty slot, which is never clicked. Every model can

* `sample` clicks for many impressions at once, from a `numpy.random.Generator` passed in,
  with an optional per-impression click propensity that scales attractiveness;
* give the exact marginal probability of a click at each position (`click_probabilities`)
  and the log-likelihood of each impression's clicks (`log_likelihood`);
* be fitted to a click log by maximum likelihood (`fit`), so a simulation can be calibrated
  on served logs.

`ClickModel` is an ABC rather than a Protocol because the models share the input checks and
the grade-to-attractiveness lookup; a model implements the three private hooks and `fit`.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Self

import numpy as np
import numpy.typing as npt

__all__ = ["ClickModel"]

logger = logging.getLogger(__name__)

EMPTY: Final = -1
"""The grade of an empty slot: examined like any position, never clicked."""

DEFAULT_MAX_ITER: Final = 1000
DEFAULT_TOL: Final = 1e-6

# Probabilities used inside an E-step are kept off 0 and 1 so no posterior divides by zero;
# the shift is far below any estimate's standard error.
_EPS: Final = 1e-12

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


class ClickModel(ABC):
    """A user model that clicks on a page of graded results.

    Subclasses are frozen dataclasses whose parameters are tuples of probabilities, indexed
    by grade (attractiveness, satisfaction) or by position (examination, continuation).
    """

    __slots__ = ()

    attractiveness: tuple[float, ...]

    @property
    def n_grades(self) -> int:
        """The number of relevance grades the model knows (0..n_grades - 1)."""
        return len(self.attractiveness)

    @property
    def n_positions(self) -> int | None:
        """The deepest page the model has parameters for, or None if any depth works."""
        return None

    def sample(
        self,
        grades: npt.ArrayLike,
        rng: np.random.Generator,
        propensity: npt.ArrayLike | None = None,
    ) -> BoolArray:
        """Samples the clicks of many impressions.

        Args:
            grades: Integer grades of shape (n_impressions, k); -1 marks an empty slot.
            rng: The source of randomness; the same generator state gives the same clicks.
            propensity: Optional non-negative multiplier of attractiveness per impression,
                shape (n_impressions,): a user's own eagerness to click. Products above 1
                are clipped to 1.

        Returns:
            A bool array of shape (n_impressions, k), True where the user clicked.

        Raises:
            ValueError: If grades or propensity are malformed or out of range.
        """
        g = as_grades(grades, self.n_grades, self.n_positions)
        a = self._attractiveness_of(g, propensity)
        return self._sample(g, a, rng) if g.shape[1] else np.zeros(g.shape, dtype=np.bool_)

    def click_probabilities(
        self, grades: npt.ArrayLike, propensity: npt.ArrayLike | None = None
    ) -> FloatArray:
        """The exact marginal probability of a click at each position.

        Args:
            grades: Integer grades of shape (n_impressions, k); -1 marks an empty slot.
            propensity: Optional per-impression multiplier of attractiveness, as in `sample`.

        Returns:
            A float array of shape (n_impressions, k).

        Raises:
            ValueError: If grades or propensity are malformed or out of range.
        """
        g = as_grades(grades, self.n_grades, self.n_positions)
        a = self._attractiveness_of(g, propensity)
        return self._click_probabilities(g, a) if g.shape[1] else a

    def log_likelihood(
        self,
        grades: npt.ArrayLike,
        clicks: npt.ArrayLike,
        propensity: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """The natural log of the probability of each impression's clicks.

        Args:
            grades: Integer grades of shape (n_impressions, k); -1 marks an empty slot.
            clicks: Clicks of the same shape (bool, or 0/1 integers).
            propensity: Optional per-impression multiplier of attractiveness, as in `sample`.

        Returns:
            A float array of shape (n_impressions,); -inf where the model cannot produce
            the clicks (e.g. two clicks under the cascade model).

        Raises:
            ValueError: If the arrays are malformed, or a click falls on an empty slot.
        """
        g = as_grades(grades, self.n_grades, self.n_positions)
        c = as_clicks(clicks, g)
        a = self._attractiveness_of(g, propensity)
        if not g.shape[1]:
            return np.zeros(g.shape[0])  # a page without positions has one outcome
        with np.errstate(divide="ignore"):
            return self._log_likelihood(g, a, c)

    @classmethod
    @abstractmethod
    def fit(
        cls,
        grades: npt.ArrayLike,
        clicks: npt.ArrayLike,
        *,
        n_grades: int | None = None,
        max_iter: int = DEFAULT_MAX_ITER,
        tol: float = DEFAULT_TOL,
    ) -> Self:
        """Fits the model to a click log by maximum likelihood.

        Args:
            grades: Integer grades of shape (n_impressions, k); -1 marks an empty slot.
            clicks: Clicks of the same shape (bool, or 0/1 integers).
            n_grades: The number of grades to fit; by default the highest grade seen + 1.
            max_iter: The most EM iterations to run (ignored by closed-form fits).
            tol: EM stops once no parameter moves by more than this in an iteration. EM
                closes in linearly, so the estimate is then within a few hundred times tol of
                the maximum (about 1e-4 by default), well inside its standard error.

        Returns:
            The fitted model. Parameters the log carries no information about (a grade that
            is never examined, a position that is never clicked) keep the initial value 0.5.

        Raises:
            ValueError: If the arrays are malformed, a click falls on an empty slot, or an
                option is out of range.
        """

    @abstractmethod
    def _sample(
        self, grades: IntArray, attractiveness: FloatArray, rng: np.random.Generator
    ) -> BoolArray:
        """Samples clicks given checked grades and per-slot attractiveness (0 if empty)."""

    @abstractmethod
    def _click_probabilities(self, grades: IntArray, attractiveness: FloatArray) -> FloatArray:
        """Exact click marginals given checked grades and per-slot attractiveness."""

    @abstractmethod
    def _log_likelihood(
        self, grades: IntArray, attractiveness: FloatArray, clicks: BoolArray
    ) -> FloatArray:
        """Per-impression log-likelihood given checked arrays (log(0) is allowed here)."""

    def _attractiveness_of(self, grades: IntArray, propensity: npt.ArrayLike | None) -> FloatArray:
        table = grade_table(self.attractiveness)
        attractiveness = table[grades]
        if propensity is None:
            return attractiveness
        p = as_propensity(propensity, grades.shape[0])
        return np.minimum(attractiveness * p[:, None], 1.0, out=attractiveness)


def probabilities(
    name: str, values: Iterable[float], length: int | None = None
) -> tuple[float, ...]:
    """Checks a parameter vector of probabilities and returns it as a tuple of floats.

    Raises:
        ValueError: Naming the parameter, if it is empty, of the wrong length, or holds a
            value outside [0, 1].
    """
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a sequence of probabilities ({err})") from None
    if not out:
        raise ValueError(f"{name}: must not be empty")
    if length is not None and len(out) != length:
        raise ValueError(f"{name}: expected {length} values, got {len(out)}")
    for i, v in enumerate(out):
        if not 0.0 <= v <= 1.0:  # also refuses NaN
            raise ValueError(f"{name}[{i}]: {v} is not a probability in [0, 1]")
    return out


def probability(name: str, value: float) -> float:
    """Checks one probability and returns it as a float.

    Raises:
        ValueError: Naming the parameter, if the value is outside [0, 1].
    """
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a probability ({err})") from None
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: {v} is not a probability in [0, 1]")
    return v


def as_grades(grades: npt.ArrayLike, n_grades: int | None, n_positions: int | None) -> IntArray:
    """Checks a grade array: integers, 2-D, each in -1..n_grades - 1, at most n_positions wide.

    Raises:
        ValueError: Naming `grades`, if any check fails.
    """
    g = np.asarray(grades)
    if g.ndim != 2:
        raise ValueError(f"grades: expected shape (n_impressions, k), got {g.shape}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        raise ValueError(f"grades: expected integers, got dtype {g.dtype}")
    if n_positions is not None and g.shape[1] > n_positions:
        raise ValueError(
            f"grades: {g.shape[1]} positions, but the model has parameters for {n_positions}"
        )
    if g.size:
        low, high = int(g.min()), int(g.max())
        top = n_grades - 1 if n_grades is not None else high
        if low < EMPTY or high > top:
            raise ValueError(f"grades: values must lie in -1..{top}, got {low}..{high}")
    return g.astype(np.intp, copy=False)


def as_clicks(clicks: npt.ArrayLike, grades: IntArray) -> BoolArray:
    """Checks a click array against its grades: same shape, 0/1, no click on an empty slot.

    Raises:
        ValueError: Naming `clicks`, if any check fails.
    """
    c = np.asarray(clicks)
    if c.shape != grades.shape:
        raise ValueError(f"clicks: shape {c.shape} does not match grades {grades.shape}")
    if c.dtype != np.bool_:
        if c.size and not (np.issubdtype(c.dtype, np.number) and np.isin(c, (0, 1)).all()):
            raise ValueError("clicks: expected bool or 0/1 values")
        c = c.astype(np.bool_)
    if (c & (grades == EMPTY)).any():
        raise ValueError("clicks: a click falls on an empty slot (grade -1)")
    return c


def as_propensity(propensity: npt.ArrayLike, n: int) -> FloatArray:
    """Checks per-impression propensities: shape (n,), finite and non-negative.

    Raises:
        ValueError: Naming `propensity`, if any check fails.
    """
    p = np.asarray(propensity, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"propensity: expected shape ({n},), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("propensity: values must be finite and non-negative")
    return p


def fit_grades(grades: npt.ArrayLike, n_grades: int | None) -> tuple[IntArray, int]:
    """Checks the grades of a log to fit and settles the number of grades.

    Raises:
        ValueError: Naming `grades` or `n_grades`.
    """
    if n_grades is not None and (isinstance(n_grades, bool) or n_grades < 1):
        raise ValueError(f"n_grades: expected a positive integer, got {n_grades!r}")
    g = as_grades(grades, n_grades, None)
    if n_grades is None:
        n_grades = int(g.max()) + 1 if g.size else 0
        if n_grades < 1:
            raise ValueError("grades: the log holds no graded result to fit")
    return g, n_grades


def check_em_options(max_iter: int, tol: float) -> None:
    """Checks the EM stopping rule.

    Raises:
        ValueError: Naming `max_iter` or `tol`.
    """
    if isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter: expected a positive integer, got {max_iter!r}")
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: expected a positive number, got {tol!r}")


def grade_table(values: tuple[float, ...]) -> FloatArray:
    """A lookup table for a per-grade parameter; index -1 (an empty slot) reads 0."""
    return np.array((*values, 0.0), dtype=np.float64)


def ratio(num: FloatArray, den: FloatArray, fallback: FloatArray) -> FloatArray:
    """num / den, clipped to [0, 1], with `fallback` where nothing was observed (den == 0)."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, np.clip(num / safe, 0.0, 1.0), fallback)


def clipped(values: FloatArray) -> FloatArray:
    """Probabilities kept off 0 and 1 for an E-step."""
    return np.clip(values, _EPS, 1.0 - _EPS)


def converged(old: Iterable[FloatArray], new: Iterable[FloatArray], tol: float) -> bool:
    """True when no parameter moved by more than tol."""
    return all(
        float(np.max(np.abs(o - n), initial=0.0)) <= tol for o, n in zip(old, new, strict=True)
    )


def log_em_end(model: str, iterations: int, done: bool) -> None:
    """Logs how EM ended; hitting the iteration bound is a warning (the estimate is returned)."""
    if done:
        logger.debug("%s: EM converged after %d iterations", model, iterations)
    else:
        logger.warning("%s: EM stopped after %d iterations without converging", model, iterations)


def first_click(clicks: BoolArray) -> IntArray:
    """The position of each impression's first click, -1 if none."""
    first = clicks.argmax(axis=1)
    return np.where(clicks.any(axis=1), first, -1).astype(np.intp)


def last_click(clicks: BoolArray) -> IntArray:
    """The position of each impression's last click, -1 if none."""
    k = clicks.shape[1]
    last = k - 1 - clicks[:, ::-1].argmax(axis=1)
    return np.where(clicks.any(axis=1), last, -1).astype(np.intp)


def clicks_until_stop(attracted: BoolArray, stop: BoolArray) -> BoolArray:
    """Clicks of a top-down scan: attracted positions up to and including the first stop.

    `stop[:, i]` says the user leaves after examining position i. Looping over the k
    columns keeps every step a vector operation over all impressions.
    """
    clicks = attracted.copy()
    examining = ~stop[:, 0]
    for j in range(1, clicks.shape[1]):
        clicks[:, j] &= examining
        examining &= ~stop[:, j]
    return clicks


def examination_from_continuation(continuation: FloatArray) -> FloatArray:
    """P(examine position i) when the user goes on from i to i + 1 with continuation[:, i]."""
    exam = np.ones_like(continuation)
    np.cumprod(continuation[:, :-1], axis=1, out=exam[:, 1:])
    return exam


def unique_rows(rows: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct rows of a small-integer matrix and how often each occurs.

    Rows are packed into one int64 each when they fit, which is many times faster than
    `np.unique(axis=0)` on a large log.
    """
    low = int(rows.min(initial=0))
    digits = rows - low
    base = int(digits.max(initial=0)) + 1
    if rows.shape[1] * math.log2(base) < 62:
        code = digits @ (base ** np.arange(rows.shape[1], dtype=np.int64))
        _, index, counts = np.unique(code, return_index=True, return_counts=True)
        return rows[index], counts
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique, counts


@dataclass(frozen=True, slots=True)
class LastClickSplit:
    """A click log split at each impression's last click, for EM over the hidden tail.

    Everything up to the last click is certain under the cascade-family models (DCM, DBN):
    the user examined it. Only what follows is hidden, so the head reduces to counts once,
    and identical tails (last click position plus the grades from there on) are merged.

    Attributes:
        n_grades: The number of grades.
        k: The number of positions.
        clicks_by_grade: All clicks per grade.
        clicks_by_position: All clicks per position.
        head_clicks_by_position: Clicks before the last click, per position (the user went on).
        head_examined: Examined positions before or at the last click, per grade.
        head_transitions: The number of certain moves from a position to the next.
        last: The last click position of each distinct tail, -1 if there was no click.
        grades: The grades of each distinct tail; positions before the last click read -2.
        weight: How many impressions share each distinct tail.
        below: Graded results below the last click (the whole page if none) per tail and
            grade, shape (n_tails, n_grades).
    """

    n_grades: int
    k: int
    clicks_by_grade: FloatArray
    clicks_by_position: FloatArray
    head_clicks_by_position: FloatArray
    head_examined: FloatArray
    head_transitions: float
    last: IntArray
    grades: IntArray
    weight: FloatArray
    below: FloatArray

    @classmethod
    def of(cls, grades: IntArray, clicks: BoolArray, n_grades: int) -> LastClickSplit:
        """Splits a checked log."""
        k = grades.shape[1]
        last = last_click(clicks)
        positions = np.arange(k)
        head = positions <= last[:, None]
        graded = grades >= 0
        before_last = positions < last[:, None]
        clicks_by_grade = np.bincount(grades[clicks], minlength=n_grades).astype(np.float64)
        head_examined = np.bincount(grades[head & graded], minlength=n_grades).astype(np.float64)
        head_clicks_by_position = (before_last & clicks).sum(axis=0).astype(np.float64)
        masked = np.where(before_last, -2, grades)
        key = np.concatenate((last[:, None], masked), axis=1)
        unique, counts = unique_rows(key)
        tails = unique[:, 1:].astype(np.intp)
        is_below = positions > unique[:, :1]
        below = np.stack([(is_below & (tails == g)).sum(axis=1) for g in range(n_grades)], axis=1)
        return cls(
            n_grades=n_grades,
            k=k,
            clicks_by_grade=clicks_by_grade,
            clicks_by_position=clicks.sum(axis=0).astype(np.float64),
            head_clicks_by_position=head_clicks_by_position,
            head_examined=head_examined,
            head_transitions=float(np.maximum(last, 0).sum()),
            last=unique[:, 0].astype(np.intp),
            grades=tails,
            weight=counts.astype(np.float64),
            below=below.astype(np.float64),
        )
