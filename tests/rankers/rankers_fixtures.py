"""Test data for the rankers tests: a tiny synthetic corpus."""

from __future__ import annotations

import numpy as np

from rankers.corpus import Corpus

TINY_CONCEPTS = 12
TINY_STYLES = ("ink", "paint")


def make_tiny_corpus(size: int = 24, seed: int = 7) -> Corpus:
    """12 concepts x 2 styles in 4 subcategories: a random pattern per concept, a tint per style."""
    rng = np.random.default_rng(seed)
    ids, images, styles, concepts, subcategories = [], [], [], [], []
    for concept in range(TINY_CONCEPTS):
        pattern = rng.integers(0, 256, size=(size, size, 3)).astype(np.int16)
        for offset, style in zip((0, 40), TINY_STYLES, strict=True):
            image = np.clip(pattern + offset + rng.integers(-8, 9, size=pattern.shape), 0, 255)
            ids.append(f"{style}/c{concept:02d}")
            images.append(image.astype(np.uint8))
            styles.append(style)
            concepts.append(f"c{concept:02d}")
            subcategories.append(f"group-{concept % 4}")
    return Corpus.from_arrays(
        "tiny",
        ids,
        np.stack(images),
        styles=styles,
        concepts=concepts,
        subcategories=subcategories,
        categories=["synthetic"] * len(ids),
    )
