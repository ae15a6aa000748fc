"""`rankers.corpus` and `rankers.emoji`: the labelled corpus, its grades, storage and fetching."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rankers_fixtures import make_tiny_corpus

from rankers import corpus as corpora
from rankers import emoji as emoji_package
from rankers.cache import CACHE_ENV
from rankers.corpus import Corpus
from rankers.errors import RankerError, UnknownItemError


def three_image_corpus() -> Corpus:
    return Corpus.from_arrays(
        "three",
        ["a/x", "b/x", "a/y"],
        np.zeros((3, 2, 2, 3), np.uint8),
        styles=["a", "b", "a"],
        concepts=["x", "x", "y"],
        subcategories=["s", "s", "t"],
    )


def test_grades_of_every_pair_of_a_tiny_corpus() -> None:
    corpus = three_image_corpus()
    expected = {
        ("a/x", "a/x"): 1,  # the query itself: same subcategory (rankers never return it)
        ("a/x", "b/x"): 2,
        ("a/x", "a/y"): 0,
        ("b/x", "a/x"): 2,
        ("b/x", "b/x"): 1,
        ("b/x", "a/y"): 0,
        ("a/y", "a/x"): 0,
        ("a/y", "b/x"): 0,
        ("a/y", "a/y"): 1,
    }
    for query, doc in itertools.product(corpus.ids, repeat=2):
        assert corpus.grade(query, doc) == expected[query, doc], (query, doc)


def test_same_subcategory_other_concept_is_grade_one() -> None:
    corpus = make_tiny_corpus()
    assert corpus.grade("ink/c00", "paint/c04") == 1  # both in group-0
    assert corpus.grade("ink/c00", "ink/c04") == 1
    assert corpus.grade("ink/c00", "paint/c01") == 0
    assert corpus.twins("ink/c03") == ("paint/c03",)


def test_lookups_and_unknown_ids() -> None:
    corpus = three_image_corpus()
    assert corpus.index_of("a/y") == 2
    assert "b/x" in corpus
    assert "c/z" not in corpus
    assert corpus.image("b/x").shape == (2, 2, 3)
    for call in (corpus.index_of, corpus.image, corpus.twins):
        with pytest.raises(UnknownItemError, match="c/z"):
            call("c/z")
    with pytest.raises(UnknownItemError):
        corpus.grade("a/x", "c/z")


def test_images_are_read_only_copies() -> None:
    pixels = np.zeros((3, 2, 2, 3), np.uint8)
    corpus = Corpus.from_arrays(
        "ro", ["1", "2", "3"], pixels, styles="aaa", concepts="xyz", subcategories="sst"
    )
    pixels[0] = 9  # the caller's array is not the corpus's
    assert corpus.images.sum() == 0
    with pytest.raises(ValueError, match="read-only"):
        corpus.images[0, 0, 0, 0] = 1


def test_digest_covers_pixels_and_labels_not_the_name() -> None:
    base = three_image_corpus()
    renamed = Corpus.from_arrays(
        "other-name",
        base.ids,
        np.array(base.images),
        styles=base.styles,
        concepts=base.concepts,
        subcategories=base.subcategories,
    )
    assert renamed.digest == base.digest
    brighter = np.array(base.images)
    brighter[2, 1, 1, 0] = 1
    relabelled = list(base.subcategories)
    relabelled[0] = "u"
    changed = [
        Corpus.from_arrays(
            "three",
            base.ids,
            brighter,
            styles=base.styles,
            concepts=base.concepts,
            subcategories=base.subcategories,
        ),
        Corpus.from_arrays(
            "three",
            base.ids,
            np.array(base.images),
            styles=base.styles,
            concepts=base.concepts,
            subcategories=relabelled,
        ),
    ]
    assert len({base.digest, *(corpus.digest for corpus in changed)}) == 3


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"ids": ["a", "a", "b"]}, ValueError, "unique"),
        ({"styles": ["a"]}, ValueError, "styles has 1 entries for 3 images"),
        ({"images": np.zeros((3, 2, 2, 3), np.float32)}, TypeError, "uint8"),
        ({"images": np.zeros((3, 2, 2), np.uint8)}, ValueError, "shape"),
        ({"images": np.zeros((0, 2, 2, 3), np.uint8), "ids": []}, ValueError, "at least one"),
        ({"name": ""}, ValueError, "name"),
    ],
)
def test_bad_corpora_are_refused(
    changes: dict[str, object], error: type[Exception], message: str
) -> None:
    arguments: dict[str, object] = {
        "name": "bad",
        "ids": ["a", "b", "c"],
        "images": np.zeros((3, 2, 2, 3), np.uint8),
        "styles": ["s"] * 3,
        "concepts": ["x", "y", "z"],
        "subcategories": ["t"] * 3,
    }
    arguments.update(changes)
    if "ids" in changes and isinstance(arguments["images"], np.ndarray):
        count = len(arguments["ids"])  # type: ignore[arg-type]
        for column in ("styles", "concepts", "subcategories"):
            if column not in changes:
                arguments[column] = ["s"] * count
    with pytest.raises(error, match=message):
        Corpus.from_arrays(**arguments)  # type: ignore[arg-type]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    corpus = make_tiny_corpus()
    directory = corpora.write(corpus, tmp_path / "tiny", sources=[{"made": "in a test"}])
    again = corpora.read(directory)
    assert again.digest == corpus.digest
    assert again.ids == corpus.ids
    assert again.subcategories == corpus.subcategories
    np.testing.assert_array_equal(again.images, corpus.images)
    meta = json.loads((directory / corpora.CORPUS_FILE).read_text())
    assert meta["sources"] == [{"made": "in a test"}]
    assert meta["count"] == len(corpus)


def test_read_refuses_missing_and_tampered_corpora(tmp_path: Path) -> None:
    with pytest.raises(RankerError, match="no corpus"):
        corpora.read(tmp_path / "nothing")
    directory = corpora.write(make_tiny_corpus(), tmp_path / "tiny")
    meta = json.loads((directory / corpora.CORPUS_FILE).read_text())
    meta["digest"] = "0" * 64
    (directory / corpora.CORPUS_FILE).write_text(json.dumps(meta))
    with pytest.raises(RankerError, match="digest"):
        corpora.read(directory)


def test_registry() -> None:
    assert "emoji" in corpora.names()
    with pytest.raises(ValueError, match="already registered"):
        corpora.register("emoji", make_tiny_corpus)
    with pytest.raises(UnknownItemError, match="no corpus named 'nope'"):
        corpora.load("nope")


def test_missing_emoji_corpus_says_to_run_make_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(RankerError, match="make data"):
        corpora.load("emoji")


def test_fetch_without_npm_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(RankerError, match=r"no-such-npm.* not found"):
        emoji_package.fetch(npm="no-such-npm")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _tarball(path: Path, style: str, entries: list[dict[str, object]], images: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        members = {"package/emoji.json": json.dumps(entries).encode()}
        for name in images:
            if style == "twitter":  # palette mode, colour 0 transparent, like Twemoji
                picture = Image.new("P", (64, 64), 0)
                picture.putpalette([0, 0, 0, 200, 0, 0] + [0, 0, 0] * 254)
                picture.paste(1, (16, 16, 48, 48))
                picture.info["transparency"] = 0
            else:  # RGBA, like Noto
                picture = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
                picture.paste((0, 0, 200, 255), (16, 16, 48, 48))
            members[f"package/img/{style}/64/{name}"] = _png(picture)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_build_keeps_emoji_drawn_in_both_styles_on_white(tmp_path: Path) -> None:
    entries: list[dict[str, object]] = [
        {
            "unified": unified,
            "image": f"{unified.lower()}.png",
            "category": "Smileys & Emotion",
            "subcategory": subcategory,
            "sort_order": order,
            "has_img_google": True,
            "has_img_twitter": twitter,
        }
        for unified, subcategory, order, twitter in [
            ("1F600", "face-smiling", 2, True),
            ("1F603", "face-smiling", 1, True),
            ("1F97A", "face-concerned", 3, False),  # Google only: left out
        ]
    ]
    names = ["1f600.png", "1f603.png", "1f97a.png"]
    tarballs = {
        "google": _tarball(tmp_path / "g.tgz", "google", entries, names),
        "twitter": _tarball(tmp_path / "t.tgz", "twitter", entries, names[:2]),
    }
    corpus = emoji_package._build(tarballs)
    assert corpus.ids == ("google/1f603", "google/1f600", "twitter/1f603", "twitter/1f600")
    assert corpus.concepts == ("1F603", "1F600", "1F603", "1F600")
    assert corpus.grade("google/1f600", "twitter/1f600") == 2
    assert corpus.images.shape == (4, 64, 64, 3)
    assert (corpus.images[:, 0, 0] == 255).all()  # transparent corners became white
    assert corpus.images[0, 32, 32].tolist() == [0, 0, 200]
    assert corpus.images[2, 32, 32].tolist() == [200, 0, 0]


# --- the real, fetched corpus -----------------------------------------------------------------


def test_emoji_corpus(emoji: Corpus) -> None:
    assert emoji.name == "emoji"
    assert emoji.images.shape == (len(emoji), 64, 64, 3)
    assert Counter(emoji.styles) == {"google": 1911, "twitter": 1911}
    per_concept = Counter(zip(emoji.concepts, emoji.styles, strict=True))
    assert set(per_concept.values()) == {1}  # exactly one image per concept and style
    assert len(set(emoji.concepts)) == 1911
    assert len(set(emoji.categories)) == 10
    assert len(set(emoji.subcategories)) > 90
    assert emoji.grade("google/1f600", "twitter/1f600") == 2
    assert emoji.twins("twitter/1f600") == ("google/1f600",)
    assert emoji.files[emoji.index_of("google/1f600")] == "1f600.png"


def test_emoji_images_are_composited_on_white(emoji: Corpus) -> None:
    corners = emoji.images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    white = (corners == 255).all(axis=(1, 2))
    assert (
        white.mean() > 0.8
    )  # flags and keycaps fill their corners; transparency never shows black
    assert not (emoji.images.reshape(len(emoji), -1) == 0).all(axis=1).any()


def test_emoji_corpus_matches_its_recorded_digest(emoji: Corpus) -> None:
    meta = json.loads((emoji_dir() / corpora.CORPUS_FILE).read_text())
    assert meta["digest"] == emoji.digest
    assert [source["package"] for source in meta["sources"]] == [
        "emoji-datasource-google",
        "emoji-datasource-twitter",
    ]


def emoji_dir() -> Path:
    return emoji_package.corpus_dir()
