"""Bad input gets a clear ValueError/TypeError naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest

import interleave

RNG = np.random.default_rng(0)
NAMES = interleave.names()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [0, -3])
def test_k_must_be_positive(name: str, k: int) -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        interleave.get(name).interleave([[1, 2], [2, 1]], k=k, rng=RNG)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [2.0, "3", True, None])
def test_k_must_be_an_int(name: str, k: object) -> None:
    with pytest.raises(TypeError, match="k must be an int"):
        interleave.get(name).interleave([[1, 2], [2, 1]], k=k, rng=RNG)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_unhashable_ids(name: str) -> None:
    with pytest.raises(TypeError, match=r"lists\[1\] holds an unhashable"):
        interleave.get(name).interleave([[1, 2], [[3], 1]], k=2, rng=RNG)


@pytest.mark.parametrize("name", NAMES)
def test_rng_must_be_a_generator(name: str) -> None:
    with pytest.raises(TypeError, match=r"rng must be a numpy\.random\.Generator"):
        interleave.get(name).interleave([[1, 2], [2, 1]], k=2, rng=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_lists_shape(name: str) -> None:
    method = interleave.get(name)
    with pytest.raises(TypeError, match="lists"):
        method.interleave("ab", k=2, rng=RNG)
    with pytest.raises(TypeError, match=r"lists\[0\]"):
        method.interleave(["ab", [1]], k=2, rng=RNG)
    with pytest.raises(ValueError, match="lists must hold"):
        method.interleave([[1, 2]], k=2, rng=RNG)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("clicks", [[5], [-1], [0, 99]])
def test_clicks_outside_the_page(name: str, clicks: list[int]) -> None:
    method = interleave.get(name)
    page = method.interleave([[1, 2, 3], [3, 2, 1]], k=3, rng=RNG)
    with pytest.raises(ValueError, match="outside the page"):
        method.credit(page, clicks)


@pytest.mark.parametrize("name", NAMES)
def test_clicks_must_be_positions(name: str) -> None:
    method = interleave.get(name)
    page = method.interleave([[1, 2, 3], [3, 2, 1]], k=3, rng=RNG)
    for bad in ([True], [0.5], "0"):
        with pytest.raises(TypeError, match="clicks"):
            method.credit(page, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("maker", NAMES)
@pytest.mark.parametrize("crediter", NAMES)
def test_page_given_to_another_method(maker: str, crediter: str) -> None:
    page = interleave.get(maker).interleave([[1, 2, 3], [3, 2, 1]], k=3, rng=RNG)
    if maker == crediter:
        interleave.get(crediter).credit(page, [0])
    else:
        with pytest.raises(interleave.PageMismatchError, match=maker):
            interleave.get(crediter).credit(page, [0])


def test_registry() -> None:
    assert set(NAMES) >= {
        "team_draft",
        "balanced",
        "team_draft_multileave",
        "probabilistic",
        "optimized",
    }
    with pytest.raises(interleave.UnknownMethodError, match="known: balanced"):
        interleave.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        interleave.register("team_draft", interleave.TeamDraft)
    with pytest.raises(TypeError, match="bad options for 'team_draft'"):
        interleave.get("team_draft", colour="red")
    with pytest.raises(ValueError, match="tau"):
        interleave.get("probabilistic", tau=0)
    with pytest.raises(ValueError, match=r"tau must lie in \(0, 50\]"):
        interleave.get("probabilistic", tau=1e308)  # accepted once, then overflowed on a page
    with pytest.raises(ValueError, match="tau must be a number"):
        interleave.get("probabilistic", tau="3")
    with pytest.raises(ValueError, match="max_pages must be an integer"):
        interleave.get("optimized", max_pages=1.5)
    with pytest.raises(ValueError, match="credit_rule"):
        interleave.get("optimized", credit_rule="cubic")
