"""Click models: exact probabilities, sampling against them, and fits that recover the truth.

One contract suite runs over every registered model. Statistical checks use a fixed seed and
a tolerance derived from the binomial (or, for fits, from the asymptotic standard error of
the maximum-likelihood estimate), with a familywise false-alarm rate of 1e-3 per test.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations import click_models
from simulations.click_models import (
    CascadeModel,
    ClickModel,
    DependentClickModel,
    DynamicBayesianNetworkModel,
    PositionBasedModel,
)

NAMES = ("cascade", "dbn", "dcm", "pbm")
FAMILYWISE_ALPHA = 1e-3


def z_for(n_comparisons: int) -> float:
    """The two-sided normal quantile that keeps n comparisons' familywise alpha at 1e-3."""
    return NormalDist().inv_cdf(1.0 - FAMILYWISE_ALPHA / (2 * n_comparisons))


def all_click_patterns(grades: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    """Every click pattern a page of grades allows (no click on an empty slot)."""
    k = grades.shape[0]
    patterns = np.array(list(itertools.product((False, True), repeat=k)), dtype=bool)
    return patterns[~(patterns & (grades < 0)).any(axis=1)]


def mixed_pages(rng: np.random.Generator, n: int, k: int) -> npt.NDArray[np.intp]:
    """Pages whose grade and position vary independently: half shuffled, half sorted."""
    grades = rng.choice(3, size=(n, k), p=(0.6, 0.25, 0.15))
    grades[: n // 2] = -np.sort(-grades[: n // 2], axis=1)
    grades[rng.random((n, k)) < 0.02] = -1
    return grades


@pytest.fixture(params=NAMES)
def model(request: pytest.FixtureRequest) -> ClickModel:
    """Each registered model with its default parameters."""
    name: str = request.param
    return click_models.get(name)


# --- registry ----------------------------------------------------------------------------


def test_registry_names_every_model() -> None:
    assert click_models.names() == NAMES
    assert isinstance(click_models.get("pbm"), PositionBasedModel)
    assert click_models.get("dbn", gamma=0.5) == DynamicBayesianNetworkModel(gamma=0.5)


def test_registry_refuses_duplicates_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="name: a click model is already registered"):
        click_models.register("pbm", PositionBasedModel)
    with pytest.raises(TypeError, match="model: expected a ClickModel subclass"):
        click_models.register("not-a-model", int)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name: no click model 'ubm'"):
        click_models.get("ubm")
    assert click_models.names() == NAMES


# --- exact probabilities -----------------------------------------------------------------


def test_cascade_marginals_by_hand() -> None:
    model = CascadeModel(attractiveness=(0.1, 0.5))
    # Position 2 is reached only if 0 and 1 were skipped: 0.5 * 0.9 * 0.5 = 0.225.
    expected = [[0.5, 0.05, 0.225]]
    np.testing.assert_allclose(model.click_probabilities([[1, 0, 1]]), expected)


def test_pbm_marginals_by_hand() -> None:
    model = PositionBasedModel(attractiveness=(0.1, 0.5), examination=(1.0, 0.5, 0.2))
    expected = [[0.5, 0.05, 0.0], [0.1, 0.25, 0.1]]
    np.testing.assert_allclose(model.click_probabilities([[1, 0, -1], [0, 1, 1]]), expected)


def test_dcm_marginals_by_hand() -> None:
    model = DependentClickModel(attractiveness=(0.1, 0.5), continuation=(0.6, 0.2, 0.5))
    # Reach 1: skip 0 (0.5) or click and go on (0.5 * 0.6) = 0.8; reach 2: 0.8 * (0.9 + 0.1 *
    # 0.2) = 0.736.
    expected = [[0.5, 0.08, 0.368]]
    np.testing.assert_allclose(model.click_probabilities([[1, 0, 1]]), expected)


def test_dbn_marginals_by_hand() -> None:
    model = DynamicBayesianNetworkModel(
        attractiveness=(0.1, 0.5), satisfaction=(0.2, 0.4), gamma=0.9
    )
    # Reach 1: 0.9 * (1 - 0.5 * 0.4) = 0.72; reach 2: 0.72 * 0.9 * (1 - 0.1 * 0.2) = 0.63504.
    expected = [[0.5, 0.072, 0.31752]]
    np.testing.assert_allclose(model.click_probabilities([[1, 0, 1]]), expected)


def test_propensity_scales_attractiveness_and_clips() -> None:
    model = PositionBasedModel(attractiveness=(0.1, 0.5), examination=(1.0, 0.5))
    got = model.click_probabilities([[1, 0], [1, 0]], propensity=[3.0, 0.0])
    np.testing.assert_allclose(got, [[1.0, 0.15], [0.0, 0.0]])


@pytest.mark.parametrize(
    ("grades", "propensity"),
    [((2, 0, 1), 1.0), ((0, -1, 2, 1), 1.7), ((1, 1, 1, 1, 0), 0.4), ((-1, -1), 1.0)],
)
def test_pattern_probabilities_sum_to_one(
    model: ClickModel, grades: tuple[int, ...], propensity: float
) -> None:
    page = np.array(grades)
    patterns = all_click_patterns(page)
    pages = np.tile(page, (len(patterns), 1))
    p = np.exp(model.log_likelihood(pages, patterns, np.full(len(patterns), propensity)))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    marginals = (p[:, None] * patterns).sum(axis=0)
    exact = model.click_probabilities(page[None, :], [propensity])[0]
    np.testing.assert_allclose(marginals, exact, atol=1e-12)


probability = st.floats(0.0, 1.0)


@st.composite
def models_and_pages(draw: st.DrawFn) -> tuple[ClickModel, npt.NDArray[np.intp]]:
    """A model with arbitrary parameters over 3 grades and a page of up to 5 slots."""
    k = draw(st.integers(1, 5))
    attractiveness = tuple(draw(st.lists(probability, min_size=3, max_size=3)))
    positional = tuple(draw(st.lists(probability, min_size=k, max_size=k)))
    name = draw(st.sampled_from(NAMES))
    params: dict[str, Any] = {"attractiveness": attractiveness}
    if name == "pbm":
        params["examination"] = positional
    elif name == "dcm":
        params["continuation"] = positional
    elif name == "dbn":
        params["satisfaction"] = tuple(draw(st.lists(probability, min_size=3, max_size=3)))
        params["gamma"] = draw(probability)
    page = np.array(draw(st.lists(st.integers(-1, 2), min_size=k, max_size=k)))
    return click_models.get(name, **params), page


@settings(max_examples=150, deadline=None)
@given(models_and_pages())
def test_exhaustive_enumeration_matches_marginals(
    case: tuple[ClickModel, npt.NDArray[np.intp]],
) -> None:
    model, page = case
    patterns = all_click_patterns(page)
    pages = np.tile(page, (len(patterns), 1))
    p = np.exp(model.log_likelihood(pages, patterns))
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    exact = model.click_probabilities(page[None, :])[0]
    np.testing.assert_allclose((p[:, None] * patterns).sum(axis=0), exact, atol=1e-9)
    assert ((exact >= 0) & (exact <= 1)).all()
    assert (exact[page < 0] == 0).all()


# --- sampling ------------------------------------------------------------------------------


def test_sampled_patterns_match_exact_probabilities(model: ClickModel) -> None:
    page = np.array([2, 0, -1, 1, 2])
    n = 100_000
    clicks = model.sample(np.tile(page, (n, 1)), np.random.default_rng(11))
    patterns = all_click_patterns(page)
    p = np.exp(model.log_likelihood(np.tile(page, (len(patterns), 1)), patterns))
    seen = (clicks[:, None, :] == patterns[None, :, :]).all(axis=2).mean(axis=0)
    assert seen.sum() == pytest.approx(1.0)  # every sampled page is a legal pattern
    tolerance = z_for(len(patterns)) * np.sqrt(p * (1 - p) / n) + 1e-12
    assert (np.abs(seen - p) <= tolerance).all(), (seen, p)


def test_sampled_click_rates_match_marginals(model: ClickModel) -> None:
    rng = np.random.default_rng(12)
    n, k = 100_000, 10
    grades = mixed_pages(rng, n, k)
    propensity = rng.uniform(0.0, 3.0, n)  # high values push attractiveness past 1 (clipped)
    clicks = model.sample(grades, rng, propensity)
    p = model.click_probabilities(grades, propensity)
    # Clicks at a position are independent across pages: the count's variance is sum p(1 - p).
    tolerance = z_for(k) * np.sqrt((p * (1 - p)).sum(axis=0))
    assert (np.abs(clicks.sum(axis=0) - p.sum(axis=0)) <= tolerance).all()


def test_cascade_clicks_once_at_the_first_attractive_result() -> None:
    rng = np.random.default_rng(13)
    grades = mixed_pages(rng, 50_000, 10)
    clicks = CascadeModel().sample(grades, rng)
    assert clicks.sum(axis=1).max() == 1
    assert clicks.sum() > 10_000
    # With grade 2 always attractive and the rest never, the click is on the first grade 2.
    certain = CascadeModel(attractiveness=(0.0, 0.0, 1.0)).sample(grades, rng)
    is_two = grades == 2
    expected = is_two & (np.cumsum(is_two, axis=1) == 1)
    np.testing.assert_array_equal(certain, expected)


def test_empty_slots_are_never_clicked(model: ClickModel) -> None:
    rng = np.random.default_rng(14)
    eager = dataclasses.replace(model, attractiveness=(1.0, 1.0, 1.0))  # type: ignore[type-var]
    grades = rng.integers(-1, 3, size=(20_000, 10))
    for m in (model, eager):
        clicks = m.sample(grades, rng, propensity=np.full(len(grades), 5.0))
        assert not clicks[grades < 0].any()
        assert clicks[grades >= 0].any()


def test_same_seed_same_clicks(model: ClickModel) -> None:
    grades = mixed_pages(np.random.default_rng(15), 5_000, 10)
    first = model.sample(grades, np.random.default_rng(99))
    again = model.sample(grades, np.random.default_rng(99))
    other = model.sample(grades, np.random.default_rng(100))
    assert first.dtype == np.bool_
    assert first.shape == grades.shape
    np.testing.assert_array_equal(first, again)
    assert (first != other).any()
    ones = model.sample(grades, np.random.default_rng(99), propensity=np.ones(len(grades)))
    np.testing.assert_array_equal(first, ones)


@pytest.mark.parametrize("shape", [(0, 10), (3, 0)])
def test_empty_batches_and_pages(model: ClickModel, shape: tuple[int, int]) -> None:
    grades = np.zeros(shape, dtype=int)
    clicks = model.sample(grades, np.random.default_rng(0))
    assert clicks.shape == shape
    assert model.click_probabilities(grades).shape == shape
    np.testing.assert_array_equal(model.log_likelihood(grades, clicks), np.zeros(shape[0]))


def test_zero_propensity_never_clicks(model: ClickModel) -> None:
    grades = mixed_pages(np.random.default_rng(16), 5_000, 10)
    clicks = model.sample(grades, np.random.default_rng(1), propensity=np.zeros(len(grades)))
    assert not clicks.any()


# --- fitting -------------------------------------------------------------------------------


def free_parameters(model: ClickModel) -> list[tuple[str, int | None]]:
    """(field, index) of every parameter a log identifies; index None for a scalar."""
    out: list[tuple[str, int | None]] = []
    for field in dataclasses.fields(model):  # type: ignore[arg-type]
        value = getattr(model, field.name)
        if isinstance(value, tuple):
            out.extend((field.name, i) for i in range(len(value)))
        else:
            out.append((field.name, None))
    # Only examination * attractiveness is identified, so PBM pins the top examination;
    # DCM's continuation after the deepest position is never observed.
    pinned = {PositionBasedModel: ("examination", 0), DependentClickModel: ("continuation", -1)}
    drop = pinned.get(type(model))
    if drop is not None:
        name, index = drop
        n = len(getattr(model, name))
        out.remove((name, index % n))
    return out


def get_parameter(model: ClickModel, key: tuple[str, int | None]) -> float:
    name, index = key
    value = getattr(model, name)
    return float(value if index is None else value[index])


def with_parameter(model: ClickModel, key: tuple[str, int | None], value: float) -> ClickModel:
    name, index = key
    if index is None:
        return dataclasses.replace(model, **{name: value})  # type: ignore[type-var]
    values = list(getattr(model, name))
    values[index] = value
    return dataclasses.replace(model, **{name: tuple(values)})  # type: ignore[type-var]


def truncated(model: ClickModel, k: int) -> ClickModel:
    """The model with its per-position parameters cut to the first k positions."""
    for name in ("examination", "continuation"):
        if hasattr(model, name):
            model = dataclasses.replace(model, **{name: getattr(model, name)[:k]})  # type: ignore[type-var]
    return model


@dataclasses.dataclass(frozen=True)
class Log:
    """A click log as its distinct (grades, clicks) pages and how often each occurs."""

    grades: npt.NDArray[np.intp]
    clicks: npt.NDArray[np.bool_]
    count: npt.NDArray[np.float64]

    @classmethod
    def of(cls, grades: npt.NDArray[np.intp], clicks: npt.NDArray[np.bool_]) -> Log:
        # 3 bits a slot (grade + 1 and the click) pack a 10-slot page into one integer.
        code = ((grades + 1) * 2 + clicks) @ (8 ** np.arange(grades.shape[1]))
        _, first, count = np.unique(code, return_index=True, return_counts=True)
        return cls(grades[first], clicks[first], count.astype(np.float64))

    def log_likelihood(self, model: ClickModel) -> float:
        return float(self.count @ model.log_likelihood(self.grades, self.clicks))


def standard_errors(
    model: ClickModel, keys: list[tuple[str, int | None]], log: Log
) -> npt.NDArray[np.float64]:
    """Asymptotic standard errors of the MLE from the outer product of per-page scores."""
    h = 1e-5
    scores = []
    for key in keys:
        v = get_parameter(model, key)
        up = with_parameter(model, key, min(v + h, 1.0)).log_likelihood(log.grades, log.clicks)
        down = with_parameter(model, key, max(v - h, 0.0)).log_likelihood(log.grades, log.clicks)
        scores.append((up - down) / (min(v + h, 1.0) - max(v - h, 0.0)))
    s = np.stack(scores, axis=1)
    covariance = np.linalg.inv(s.T @ (s * log.count[:, None]))
    return np.sqrt(np.diag(covariance))


FitCase = tuple[ClickModel, ClickModel, Log]


@pytest.fixture(scope="module")
def fit_log() -> Callable[[str], FitCase]:
    """Per model: the true model (10 positions), its fit to 200,000 sampled pages, the log."""
    cache: dict[str, FitCase] = {}

    def make(name: str) -> FitCase:
        if name not in cache:
            rng = np.random.default_rng(17)
            truth = truncated(click_models.get(name), 10)
            grades = mixed_pages(rng, 200_000, 10)
            clicks = truth.sample(grades, rng)
            cache[name] = (truth, type(truth).fit(grades, clicks), Log.of(grades, clicks))
        return cache[name]

    return make


# Every parameter of every model is checked at once: 3 + 7 + 12 + 12 comparisons.
FIT_Z = z_for(34)


@pytest.mark.parametrize("name", NAMES)
def test_fit_recovers_parameters(name: str, fit_log: Callable[[str], FitCase]) -> None:
    truth, fitted, log = fit_log(name)
    keys = free_parameters(truth)
    se = standard_errors(fitted, keys, log)
    # The tolerance is FIT_Z (about 4.4) standard errors, each under 0.03 on this log (the
    # widest is DCM's continuation near the bottom, where clicks are rare).
    assert se.max() < 0.03, dict(zip(keys, se, strict=True))
    for key, error in zip(keys, se, strict=True):
        got, want = get_parameter(fitted, key), get_parameter(truth, key)
        assert abs(got - want) <= FIT_Z * error, (key, got, want, error)


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_a_maximum(name: str, fit_log: Callable[[str], FitCase]) -> None:
    truth, fitted, log = fit_log(name)
    best = log.log_likelihood(fitted)
    assert best >= log.log_likelihood(truth)
    for key in free_parameters(fitted):
        v = get_parameter(fitted, key)
        for nudged in (v - 0.01, v + 0.01):
            if 0.0 <= nudged <= 1.0:
                moved = with_parameter(fitted, key, nudged)
                assert log.log_likelihood(moved) < best, (key, nudged)


def test_dcm_fit_leaves_the_unobserved_continuation_at_its_start() -> None:
    grades = mixed_pages(np.random.default_rng(18), 20_000, 6)
    clicks = DependentClickModel().sample(grades, np.random.default_rng(19))
    fitted = DependentClickModel.fit(grades, clicks)
    assert len(fitted.continuation) == 6
    assert fitted.continuation[-1] == 0.5


def test_cascade_fit_by_hand_uses_first_clicks() -> None:
    # Page 1 clicks grade 0 at the top (its second click is ignored); page 2 skips grade 0
    # and clicks grade 1. Grade 0: 1 click in 2 examinations; grade 1: 1 in 1.
    fitted = CascadeModel.fit([[0, 1], [0, 1]], [[1, 1], [0, 1]])
    assert fitted.attractiveness == (0.5, 1.0)


def test_pbm_fit_of_one_position_is_the_click_rate() -> None:
    grades = [[0], [0], [0], [0], [1], [1]]
    clicks = [[1], [0], [0], [0], [1], [0]]
    fitted = PositionBasedModel.fit(grades, clicks)
    assert fitted.examination == (1.0,)
    assert fitted.attractiveness == pytest.approx((0.25, 0.5))


def test_fit_keeps_unobserved_grades_at_their_start(model: ClickModel) -> None:
    grades = mixed_pages(np.random.default_rng(20), 5_000, 5)
    clicks = model.sample(grades, np.random.default_rng(21))
    fitted = type(model).fit(grades, clicks, n_grades=4)
    assert fitted.n_grades == 4
    assert fitted.attractiveness[3] == 0.5
    assert type(model).fit(grades, clicks).n_grades == 3


def test_fit_is_deterministic(model: ClickModel) -> None:
    grades = mixed_pages(np.random.default_rng(22), 5_000, 5)
    clicks = model.sample(grades, np.random.default_rng(23))
    assert type(model).fit(grades, clicks) == type(model).fit(grades, clicks.astype(int))


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: CascadeModel(attractiveness=(0.1, 1.2)), r"attractiveness\[1\]"),
        (lambda: CascadeModel(attractiveness=(float("nan"),)), r"attractiveness\[0\]"),
        (lambda: CascadeModel(attractiveness=()), "attractiveness: must not be empty"),
        (lambda: CascadeModel(attractiveness=("high",)), "attractiveness"),  # type: ignore[arg-type]
        (lambda: PositionBasedModel(examination=(1.0, -0.1)), r"examination\[1\]"),
        (lambda: DependentClickModel(continuation=(2.0,)), r"continuation\[0\]"),
        (lambda: DynamicBayesianNetworkModel(satisfaction=(0.1, 0.2)), "satisfaction: expected 3"),
        (lambda: DynamicBayesianNetworkModel(gamma=1.5), "gamma"),
        (lambda: click_models.get("dbn", gamma=-0.1), "gamma"),
    ],
)
def test_invalid_parameters_raise(build: Callable[[], ClickModel], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize(
    ("grades", "propensity", "match"),
    [
        ([0, 1, 2], None, "grades: expected shape"),
        ([[0.0, 1.0]], None, "grades: expected integers"),
        ([[0, 3]], None, r"grades: values must lie in -1\.\.2"),
        ([[0, -2]], None, r"grades: values must lie in -1\.\.2"),
        ([[0, 1]], [1.0, 1.0], "propensity: expected shape"),
        ([[0, 1]], [-1.0], "propensity: values must be finite and non-negative"),
        ([[0, 1]], [float("inf")], "propensity: values must be finite and non-negative"),
    ],
)
def test_invalid_inputs_raise(model: ClickModel, grades: Any, propensity: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model.sample(grades, np.random.default_rng(0), propensity)
    with pytest.raises(ValueError, match=match):
        model.click_probabilities(grades, propensity)


def test_pages_deeper_than_the_position_parameters_raise(model: ClickModel) -> None:
    deep = np.zeros((2, 21), dtype=int)
    if model.n_positions is None:  # cascade and DBN have no per-position parameters
        assert model.sample(deep, np.random.default_rng(0)).shape == (2, 21)
    else:
        assert model.n_positions == 20
        with pytest.raises(ValueError, match="grades: 21 positions"):
            model.sample(deep, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("clicks", "options", "match"),
    [
        ([[1, 1]], {}, "clicks: a click falls on an empty slot"),
        ([[1, 0, 0]], {}, "clicks: shape"),
        ([[2, 0]], {}, "clicks: expected bool or 0/1"),
        ([[1, 0]], {"max_iter": 0}, "max_iter"),
        ([[1, 0]], {"tol": 0.0}, "tol"),
        ([[1, 0]], {"n_grades": 0}, "n_grades"),
    ],
)
def test_invalid_fits_raise(
    model: ClickModel, clicks: Any, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        type(model).fit([[1, -1]], clicks, **options)


def test_log_likelihood_refuses_clicks_on_empty_slots(model: ClickModel) -> None:
    with pytest.raises(ValueError, match="clicks: a click falls on an empty slot"):
        model.log_likelihood([[0, -1]], [[False, True]])
