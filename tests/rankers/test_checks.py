"""Tests for `rankers.checks`: cases, statistics, the gate, retrieval and the command line."""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rankers import checks
from rankers.checks import (
    MFT,
    Case,
    CheckConfig,
    CheckResult,
    EmbeddingCache,
    PairedComparison,
    PassRate,
    draw_cases,
    gate,
    mcnemar_exact,
    nearest_is_positive,
    pass_rate,
    retrieval_quality,
    run_checks,
)
from rankers.corpus import Corpus
from rankers.embedder import Images, as_images
from rankers.errors import RankerError

ROOT = Path(__file__).resolve().parents[2]
STYLES = ("google", "twitter")

# --- a synthetic corpus and embedders with known behaviour --------------------------------------


def synthetic_corpus(concepts: int = 60, size: int = 8, seed: int = 0) -> Corpus:
    """`concepts` concepts in both styles; red channel = concept, green = style, blue = noise."""
    rng = np.random.default_rng(seed)
    n = 2 * concepts
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    concept = np.repeat(np.arange(concepts), 2)
    style = np.tile([0, 1], concepts)
    images[:, :, :, 0] = concept[:, None, None]
    images[:, :, :, 1] = style[:, None, None] * 255
    return Corpus.from_arrays(
        "synthetic",
        tuple(f"{STYLES[s]}/{c:04x}" for c, s in zip(concept, style, strict=True)),
        images=images,
        styles=tuple(STYLES[s] for s in style),
        concepts=tuple(f"{c:04x}" for c in concept),
        subcategories=tuple(f"sub{c // 4}" for c in concept),
        categories=tuple(f"cat{c // 20}" for c in concept),
    )


class FakeEmbedder:
    """A test embedder: a pure function of each image, counting the images it embeds."""

    version = "test"

    def __init__(self, name: str, dim: int) -> None:
        self.name = name
        self.dim = dim
        self.sha256 = hashlib.sha256(name.encode()).hexdigest()
        self.embedded = 0

    def vector(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        frames = as_images(images)
        self.embedded += len(frames)
        if not frames:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.stack([self.vector(image) for image in frames]).astype(np.float32)
        unit: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit


def noise_vector(
    image: npt.NDArray[np.uint8], dim: int, salt: bytes = b""
) -> npt.NDArray[np.float64]:
    seed = int.from_bytes(hashlib.blake2b(salt + image.tobytes(), digest_size=8).digest(), "big")
    return np.random.default_rng(seed).standard_normal(dim)


class ConceptEmbedder(FakeEmbedder):
    """Perfect: the one-hot of the concept coded in the red channel (style and noise ignored)."""

    def __init__(self, concepts: int = 256) -> None:
        super().__init__("one-hot", concepts)

    def vector(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        one_hot = np.zeros(self.dim, dtype=np.float32)
        one_hot[int(np.bincount(image[:, :, 0].ravel()).argmax())] = 1.0
        return one_hot


class RandomEmbedder(FakeEmbedder):
    """Useless: a random unit vector seeded by the image bytes."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__("random", dim)

    def vector(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        return noise_vector(image, self.dim).astype(np.float32)


class FlakyEmbedder(ConceptEmbedder):
    """Perfect on about `share` of the concepts (by a hash of the concept), random on the rest."""

    def __init__(self, share: float) -> None:
        super().__init__()
        self.name = f"flaky-{share}"
        self.share = share

    def vector(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        concept = int(np.bincount(image[:, :, 0].ravel()).argmax())
        digest = hashlib.blake2b(concept.to_bytes(2, "big"), digest_size=8).digest()
        if int.from_bytes(digest, "big") / 2**64 < self.share:
            return super().vector(image)
        return noise_vector(image, self.dim, b"flaky").astype(np.float32)


# --- drawing cases ------------------------------------------------------------------------------


def labels(corpus: Corpus) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]]:
    return np.asarray(corpus.styles, dtype=np.str_), np.asarray(corpus.concepts, dtype=np.str_)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 80),
    m=st.integers(1, 12),
    seed=st.integers(0, 2**32),
    anchor_style=st.sampled_from([None, "google", "twitter"]),
)
def test_cases_have_one_same_concept_image_and_distinct_other_concepts(
    n: int, m: int, seed: int, anchor_style: str | None
) -> None:
    styles, concepts = labels(synthetic_corpus(concepts=20))
    cases = draw_cases(
        styles,
        concepts,
        n=n,
        distractors=m,
        rng=np.random.default_rng(seed),
        anchor_style=anchor_style,
    )
    assert len(cases) == n
    for case in cases:
        if anchor_style is not None:
            assert styles[case.anchor] == anchor_style
        assert concepts[case.positive] == concepts[case.anchor]
        assert styles[case.positive] != styles[case.anchor]
        others = [concepts[i] for i in case.distractors]
        assert len(others) == m
        assert len(set(others)) == m
        assert concepts[case.anchor] not in others
        assert all(styles[i] == styles[case.positive] for i in case.distractors)
    eligible = 40 if anchor_style is None else 20
    if n <= eligible:
        assert len({case.anchor for case in cases}) == n


def test_the_same_seed_draws_the_same_cases() -> None:
    styles, concepts = labels(synthetic_corpus())

    def draw(seed: int) -> tuple[Case, ...]:
        return draw_cases(styles, concepts, n=50, distractors=9, rng=np.random.default_rng(seed))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_drawing_refuses_impossible_requests() -> None:
    styles, concepts = labels(synthetic_corpus(concepts=5))
    rng = np.random.default_rng(0)
    with pytest.raises(RankerError, match="distractors"):
        draw_cases(styles, concepts, n=3, distractors=5, rng=rng)
    with pytest.raises(RankerError, match="anchor style"):
        draw_cases(styles, concepts, n=3, distractors=2, rng=rng, anchor_style="apple")
    with pytest.raises(RankerError, match="two styles"):
        draw_cases(["google"] * 3, ["a", "b", "c"], n=3, distractors=1, rng=rng)
    with pytest.raises(ValueError, match="distractors"):
        draw_cases(styles, concepts, n=3, distractors=0, rng=rng)
    with pytest.raises(ValueError, match="concepts"):
        draw_cases(styles, concepts[:-1], n=3, distractors=1, rng=rng)


# --- the pass rule and statistics ---------------------------------------------------------------


def test_nearest_is_positive_by_cosine_and_a_tie_fails() -> None:
    anchors = np.array([[1, 0], [1, 0], [1, 0]], dtype=np.float32)
    # Cosine, not dot product: the long distractor in case 0 is further in angle.
    positives = np.array([[1, 0.1], [0, 1], [1, 1]], dtype=np.float32)
    distractors = np.array(
        [[[10, 5], [0, 1]], [[1, 0.5], [-1, 0]], [[2, 2], [0, 1]]], dtype=np.float32
    )
    outcome = nearest_is_positive(anchors, positives, distractors)
    np.testing.assert_array_equal(outcome, [True, False, False])


def test_wilson_interval_matches_the_closed_form() -> None:
    passes, n, z = 45, 50, stats.norm.ppf(0.975)
    p = passes / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    rate = pass_rate(np.array([True] * passes + [False] * (n - passes)))
    assert rate.rate == pytest.approx(0.9)
    assert (rate.low, rate.high) == pytest.approx((centre - half, centre + half))
    assert (rate.passes, rate.cases, rate.confidence) == (45, 50, 0.95)


def test_mcnemar_exact_is_the_two_sided_binomial_on_discordant_cases() -> None:
    model = np.array([True] * 10 + [False] * 5 + [True] * 1 + [False] * 3)
    baseline = np.array([True] * 10 + [True] * 5 + [False] * 1 + [False] * 3)
    result = mcnemar_exact(model, baseline)
    # 1 vs 5 discordant: p = 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64.
    assert (result.model_only, result.baseline_only) == (1, 5)
    assert result.p_value == pytest.approx(14 / 64)
    same = mcnemar_exact(model, model)
    assert same == PairedComparison(0, 0, 1.0)
    with pytest.raises(ValueError, match="same cases"):
        mcnemar_exact(model, baseline[:-1])


def rate(passes: int, cases: int) -> PassRate:
    return pass_rate(np.arange(cases) < passes)


def test_gate_needs_the_threshold_and_no_significant_loss_to_the_baseline() -> None:
    results = [
        CheckResult("good", rate(98, 100)),
        CheckResult("low", rate(90, 100)),
        CheckResult("worse", rate(96, 100), rate(100, 100), PairedComparison(0, 4, 0.125)),
        CheckResult("sig-worse", rate(96, 100), rate(100, 100), PairedComparison(0, 4, 0.01)),
        CheckResult("sig-better", rate(96, 100), rate(80, 100), PairedComparison(16, 0, 0.001)),
    ]
    verdict = gate(results, threshold=0.95, alpha=0.05)
    passed = {d.check: d.passed for d in verdict.decisions}
    assert passed == {
        "good": True,
        "low": False,
        "worse": True,
        "sig-worse": False,
        "sig-better": True,
    }
    assert not verdict.passed
    assert verdict.reason == (
        "2 of 5 checks failed; below the threshold: low; "
        "significantly worse than the baseline: sig-worse"
    )
    reasons = {d.check: d.reason for d in verdict.decisions}
    assert reasons["low"] == "low: pass rate 0.900 < threshold 0.950"
    assert reasons["sig-worse"] == (
        "sig-worse: pass rate 0.960 >= threshold 0.950, "
        "significantly below the baseline's 1.000 (McNemar p=0.01)"
    )
    assert gate(results[:1], threshold=0.95).passed
    assert gate(results[1:2], threshold=0.9).passed  # the threshold is inclusive


# --- retrieval quality --------------------------------------------------------------------------


def test_retrieval_quality_by_hand() -> None:
    # Queries: google a, b, c; gallery: twitter a, b, c. Subcategories: a, b in s1; c in s2.
    embeddings = np.array([[1, 0], [0, 1], [1, 1], [1, 0.2], [0.2, 1], [-1, 0]], dtype=np.float32)
    styles = ["google"] * 3 + ["twitter"] * 3
    concepts = ["a", "b", "c"] * 2
    subcategories = ["s1", "s1", "s2"] * 2
    quality = retrieval_quality(embeddings, styles, concepts, subcategories, query_style="google")
    # a and b find themselves first; c's nearest are twitter a and b (its own is opposite).
    assert quality.queries == 3
    assert quality.recall_at_1 == pytest.approx(2 / 3)
    assert quality.recall_at_10 == pytest.approx(1.0)
    # Top 10 of a 3-image gallery: a -> {a, b(s1)}, b -> {b, a(s1)}, c -> {c}; empty ranks count 0.
    assert quality.precision_at_10 == pytest.approx((2 + 2 + 1) / 30)
    both = retrieval_quality(embeddings, styles, concepts, subcategories)
    assert both.queries == 6


def test_retrieval_quality_of_a_perfect_and_a_random_model() -> None:
    corpus = synthetic_corpus(concepts=60)
    images = np.asarray(corpus.images)
    perfect = ConceptEmbedder().embed(images)
    quality = retrieval_quality(perfect, corpus.styles, corpus.concepts, corpus.subcategories)
    assert quality.recall_at_1 == quality.recall_at_10 == 1.0
    assert quality.precision_at_10 >= 0.1  # the concept itself is always in the top 10
    noise = RandomEmbedder().embed(images)
    random = retrieval_quality(noise, corpus.styles, corpus.concepts, corpus.subcategories)
    # 120 queries, each with a 1/60 chance at rank 1.
    assert random.recall_at_1 <= stats.binom.ppf(0.999, 120, 1 / 60) / 120


# --- the MFT and invariance test end to end on the synthetic corpus -----------------------------

FAST = CheckConfig(cases=60, distractors=9, transforms=("flip", "rotate-90"), retrieval=False)


def test_perfect_embedder_passes_every_case() -> None:
    report = run_checks(synthetic_corpus(), ConceptEmbedder(), config=FAST)
    for result in report.results:
        assert result.model.passes == result.model.cases == 60
    assert [r.check for r in report.results] == [MFT, "flip", "rotate-90"]
    assert report.verdict.passed


def test_random_embedder_passes_about_one_in_m_plus_one() -> None:
    m, n = 9, 400
    config = CheckConfig(cases=n, distractors=m, transforms=(), retrieval=False, anchor_style=None)
    report = run_checks(synthetic_corpus(concepts=200), RandomEmbedder(), config=config)
    low, high = stats.binom.interval(0.999, n, 1 / (m + 1))
    assert low <= report.results[0].model.passes <= high
    assert not report.verdict.passed


def test_each_distinct_image_is_embedded_once() -> None:
    corpus = synthetic_corpus()
    embedder = ConceptEmbedder()
    report = run_checks(corpus, embedder, config=FAST)
    distinct = {i for case in report.cases for i in (case.anchor, case.positive, *case.distractors)}
    positives = {case.positive for case in report.cases}
    assert embedder.embedded == len(distinct) + 2 * len(positives)


def test_invariance_uses_the_transformed_positive() -> None:
    corpus = synthetic_corpus()
    styles, concepts = labels(corpus)
    cases = draw_cases(styles, concepts, n=40, distractors=5, rng=np.random.default_rng(1))

    def identity(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return image.copy()

    def blank(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return np.full_like(image, 255)  # concept 255 exists in no case

    cache = EmbeddingCache(
        ConceptEmbedder(), np.asarray(corpus.images), transforms={"same": identity, "blank": blank}
    )
    assert checks.case_outcomes(cache, cases, "same").all()
    assert not checks.case_outcomes(cache, cases, "blank").any()
    with pytest.raises(KeyError):
        checks.case_outcomes(cache, cases, "rotate-90")


def test_mcnemar_catches_a_clearly_worse_model() -> None:
    corpus = synthetic_corpus(concepts=200)
    config = CheckConfig(cases=200, threshold=0.5, transforms=("flip",), retrieval=False)
    worse = run_checks(corpus, FlakyEmbedder(0.7), ConceptEmbedder(), config=config)
    mft = worse.results[0]
    assert mft.comparison is not None
    assert mft.baseline is not None
    assert mft.baseline.rate == 1.0
    assert 0.5 <= mft.model.rate < 0.9
    assert mft.comparison.model_only == 0
    assert mft.comparison.p_value < 1e-6
    assert not worse.verdict.passed
    assert "significantly worse than the baseline: mft" in worse.verdict.reason
    # The other way round the challenger is better: no reason to fail it.
    better = run_checks(corpus, ConceptEmbedder(), FlakyEmbedder(0.7), config=config)
    assert better.verdict.passed
    # Same cases for both models.
    assert better.cases == worse.cases


def test_a_broken_embedder_is_an_error_not_an_answer() -> None:
    class Broken(ConceptEmbedder):
        def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
            return np.full((len(images), self.dim), np.nan, dtype=np.float32)

    with pytest.raises(RankerError, match="finite"):
        run_checks(synthetic_corpus(), Broken(), config=FAST)


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CheckConfig(threshold=1.5)
    with pytest.raises(ValueError, match="cases"):
        CheckConfig(cases=0)
    with pytest.raises(RankerError, match="rotate-45"):
        CheckConfig(transforms=("rotate-45",))


# --- the command line ---------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    checks.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def fake_world(monkeypatch: pytest.MonkeyPatch) -> None:
    """`corpus.load` and `models.load_embedder` give the synthetic corpus and the fake models."""
    from rankers import corpus, models

    def load_corpus(name: str = "emoji") -> Corpus:
        return synthetic_corpus()

    def load_embedder(name: str, *, threads: int | None = None) -> FakeEmbedder:
        return {"perfect": ConceptEmbedder, "random": RandomEmbedder}[name]()

    monkeypatch.setattr(corpus, "load", load_corpus)
    monkeypatch.setattr(models, "load_embedder", load_embedder)


@pytest.mark.usefixtures("fake_world")
def test_cli_exits_non_zero_with_one_line_reason_when_the_gate_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = checks.run(
        parse("--model", "random", "--baseline", "perfect", "--cases", "50", "--out", str(tmp_path))
    )
    assert code == 1
    err = capsys.readouterr().err
    [reason] = [line for line in err.splitlines() if line.startswith("gate failed")]
    assert "below the threshold: mft" in reason
    report = (tmp_path / "report.md").read_text()
    assert "**Gate FAILED**" in report
    assert "| check | random | 95% CI | one-hot | 95% CI | +/- | McNemar p | gate |" in report
    assert "| mft |" in report


@pytest.mark.usefixtures("fake_world")
def test_cli_exits_zero_when_the_gate_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("--model", "perfect", "--baseline", "random", "--cases", "50", "--transforms", "flip")
    assert checks.run(parse(*argv, "--threshold", "0.99")) == 0
    out = capsys.readouterr().out
    assert "mft" in out
    assert "flip" in out


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ("--model", "x", "--threshold", "2"),
        ("--model", "x", "--cases", "0"),
        ("--model", "x", "--transforms", "rotate-45"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            parse(*argv)
        assert exit_info.value.code == 2
    capsys.readouterr()


def test_cli_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rankers", "check", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for option in (
        "--model",
        "--baseline",
        "--corpus",
        "--cases",
        "--distractors",
        "--threshold",
        "--seed",
        "--out",
        "--threads",
    ):
        assert option in result.stdout


# --- the real thing: a real ONNX model and the real corpus --------------------------------------


def real_corpus() -> Corpus:
    from rankers import emoji

    if not (emoji.corpus_dir() / "corpus.json").is_file():
        pytest.skip("the emoji corpus is not fetched (make data)")
    return emoji.load()


def require_model(name: str) -> None:
    from rankers import models

    if name not in models.bundled() or not models.manifest(name).model_path.is_file():
        pytest.skip(f"the {name} model files are not in rankers/models yet")


@pytest.mark.slow
def test_effnet_lite0_against_raw_pixels_on_the_emoji_corpus() -> None:
    corpus = real_corpus()
    require_model("effnet-lite0")
    from rankers.models import load_embedder

    config = CheckConfig(cases=30, transforms=("rotate-90", "flip"), retrieval=False)
    report = run_checks(
        corpus, load_embedder("effnet-lite0", threads=2), load_embedder("pixels-16"), config=config
    )
    assert report.model.name == "effnet-lite0"
    assert report.baseline is not None
    assert report.baseline.name == "pixels-16"
    assert [r.check for r in report.results] == [MFT, "rotate-90", "flip"]
    mft, rotated, _ = report.results
    # A real model finds the twin among 10 far more often than chance (1 in 10).
    assert mft.model.low > 0.3
    # Raw pixels are not rotation-invariant: turning the twin by 90 degrees hurts them.
    assert rotated.baseline is not None
    assert mft.baseline is not None
    assert rotated.baseline.rate < mft.baseline.rate
    for result in report.results:
        assert result.comparison is not None
        assert 0 <= result.comparison.p_value <= 1


@pytest.mark.slow
def test_cli_on_the_real_corpus_fails_an_unreachable_threshold(tmp_path: Path) -> None:
    real_corpus()
    argv = ["--model", "pixels-16", "--cases", "30", "--threshold", "0.99", "--no-retrieval"]
    result = subprocess.run(
        [sys.executable, "-m", "rankers", "check", *argv, "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    [reason] = [line for line in result.stderr.splitlines() if line.startswith("gate failed")]
    assert "below the threshold: mft" in reason
    assert "pixels-16" in result.stdout
    assert "**Gate FAILED**" in (tmp_path / "report.md").read_text()


def test_single_style_corpus_draws_same_style_positives() -> None:
    styles = ["silhouette"] * 40
    concepts = [f"c{i % 8}" for i in range(40)]
    cases = draw_cases(
        styles, concepts, n=50, distractors=4, rng=np.random.default_rng(0), anchor_style="google"
    )
    for case in cases:
        assert case.positive != case.anchor
        assert concepts[case.positive] == concepts[case.anchor]
        assert all(concepts[d] != concepts[case.anchor] for d in case.distractors)
