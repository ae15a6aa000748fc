"""Pages regenerate from (salt, unit, query) through a stable hash."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import interleave


def test_seed_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; ours must not be, or old logs cannot be audited.
    code = "import interleave; print(interleave.seed_for('exp', 'user-1', 'q-9'))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert runs == {f"{interleave.seed_for('exp', 'user-1', 'q-9')}\n"}


def test_parts_are_length_prefixed() -> None:
    assert interleave.seed_for("a", "bc", "d") != interleave.seed_for("ab", "c", "d")
    assert interleave.seed_for("a", "b", "c") != interleave.seed_for("b", "a", "c")


def test_seeds_spread_over_64_bits() -> None:
    seeds = [interleave.seed_for("salt", f"user-{i}", "q") for i in range(2000)]
    assert len(set(seeds)) == 2000
    top_bits = np.array([s >> 63 for s in seeds])
    assert abs(top_bits.mean() - 0.5) < 4 * np.sqrt(0.25 / 2000)


def test_a_page_regenerates_from_its_seed() -> None:
    method = interleave.get("team_draft")
    lists = [list(range(20)), list(range(19, -1, -1))]
    seed = interleave.seed_for("exp-1", "user-7", "query-3")
    first = method.interleave(lists, k=10, rng=interleave.rng_for("exp-1", "user-7", "query-3"))
    again = method.interleave(lists, k=10, rng=interleave.rng_from_seed(seed))
    assert first == again


def test_bad_seed_parts() -> None:
    with pytest.raises(TypeError, match="unit must be a str"):
        interleave.seed_for("s", 3, "q")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        interleave.rng_from_seed(-1)


def test_generator_is_a_function_of_the_seed_alone() -> None:
    code = (
        "import interleave; print(interleave.rng_from_seed(2**64 - 1).bit_generator.random_raw(3))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = interleave.rng_from_seed(2**64 - 1).bit_generator.random_raw(3)
    assert out.stdout == f"{here}\n"
    assert interleave.rng_from_seed(7).random() == interleave.rng_from_seed(7).random()
    assert interleave.rng_from_seed(7).random() != interleave.rng_from_seed(8).random()


def test_first_coin_words_are_unbiased_across_seeds() -> None:
    # A team draft takes its coins from the first raw word: over consecutive seeds every bit
    # must be a fair coin, or one ranker would pick first more often.
    words = np.array(
        [interleave.rng_from_seed(seed).bit_generator.random_raw() for seed in range(4000)],
        dtype=np.uint64,
    )
    bits = (words[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    means = bits.mean(axis=0)
    assert np.abs(means - 0.5).max() < 5 * np.sqrt(0.25 / 4000)


def test_generator_pickles() -> None:
    import pickle

    rng = interleave.rng_from_seed(99)
    rng.random(5)
    clone = pickle.loads(pickle.dumps(rng))
    assert clone.random() == rng.random()


def test_seed_schemes_are_pinned() -> None:
    # Logged seeds must replay forever: these words are the definition, not a snapshot to update.
    current = interleave.rng_from_seed(0).bit_generator.random_raw(2)
    assert current.tolist() == [14222963615645070207, 10702002547119066519]
    last = interleave.rng_from_seed(2**64 - 1, "blake2b-pcg64").bit_generator.random_raw()
    assert last == 14863108896374474045
    legacy = interleave.rng_from_seed(12345, "seedsequence-pcg64").random(3)
    np.testing.assert_array_equal(legacy, np.random.Generator(np.random.PCG64(12345)).random(3))
    with pytest.raises(ValueError, match="unknown seed scheme"):
        interleave.rng_from_seed(1, "mt19937")


@pytest.mark.parametrize("scheme", interleave.SEED_SCHEMES)
def test_seed_words_are_the_generators_raw_words(scheme: str) -> None:
    # Pages drafted from seed_words must be the pages rng_from_seed stands for, forever.
    rng = np.random.default_rng(5)
    seeds = [0, 1, 2**63, 2**64 - 1, *rng.integers(0, 2**64 - 1, 500, dtype=np.uint64).tolist()]
    for seed in seeds:
        words = interleave.seed_words(seed, scheme)
        expected = interleave.rng_from_seed(seed, scheme).bit_generator.random_raw(4)
        assert [words() for _ in range(4)] == expected.tolist(), seed


def test_seed_words_refuse_what_rng_from_seed_refuses() -> None:
    for bad in (-1, 2**64, 1.0, True):
        with pytest.raises(ValueError, match="seed"):
            interleave.seed_words(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown seed scheme"):
        interleave.seed_words(1, "mt19937")
    assert interleave.seed_words(np.uint64(7))() == interleave.seed_words(7)()


def test_seeds_are_pinned() -> None:
    # Logged seeds and salts must keep meaning the same pages: the definition, not a snapshot.
    assert interleave.seed_for("exp", "user-1", "q-9") == 14184962543750765336
    assert interleave.seed_for("", "", "") == 14782951834040332842
    assert interleave.seed_for("sälz", "ü" * 300, "q") == 14497452054873804649


@pytest.mark.parametrize("scheme", interleave.SEED_SCHEMES)
def test_first_word_is_the_first_raw_word(scheme: str) -> None:
    rng = np.random.default_rng(6)
    for seed in [0, 2**64 - 1, *rng.integers(0, 2**64 - 1, 300, dtype=np.uint64).tolist()]:
        expected = interleave.rng_from_seed(seed, scheme).bit_generator.random_raw()
        assert interleave.first_word(seed, scheme) == expected
        assert interleave.seed_words(seed, scheme)() == expected
    with pytest.raises(ValueError, match="seed"):
        interleave.first_word(-1)
