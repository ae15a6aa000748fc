"""The bundled emoji corpus: the same emoji drawn by Google (Noto) and Twitter (Twemoji).

`fetch` runs ``npm pack`` for two pinned packages of the emoji-datasource project, checks their
sha256, keeps the tarballs in ``<cache>/data/npm/`` (so it downloads once), reads the 64-pixel PNGs
and the ``emoji.json`` labels straight from the tarballs, composites every image on white (Twitter's
PNGs are palette mode, Google's RGBA) and writes the corpus to ``<cache>/data/emoji/`` with
`rankers.corpus.write`. Only emoji drawn in both styles are kept, and skin-tone variants are left
out, so each concept has exactly one image per style.

Licences (see ``rankers/CORPUS_LICENSES.md``): Noto Emoji images are Apache-2.0; Twemoji graphics
are CC-BY-4.0, copyright Twitter, Inc and other contributors; the emoji-datasource labels are MIT.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from rankers import cache, images
from rankers.cache import file_sha256
from rankers.corpus import CORPUS_FILE, Corpus, read, write
from rankers.errors import ImageError, RankerError

__all__ = ["PACKAGES", "STYLES", "NpmPackage", "corpus_dir", "fetch", "load"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NpmPackage:
    """One pinned npm package: the tarball ``npm pack name@version`` downloads, and its sha256."""

    name: str
    version: str
    sha256: str
    style: str
    license: str

    @property
    def tarball(self) -> str:
        """The file name ``npm pack`` writes."""
        return f"{self.name}-{self.version}.tgz"


PACKAGES: Final = (
    NpmPackage(
        name="emoji-datasource-google",
        version="16.0.0",
        sha256="fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
        style="google",
        license="Apache-2.0 (Noto Emoji images); MIT (emoji-datasource data)",
    ),
    NpmPackage(
        name="emoji-datasource-twitter",
        version="16.0.0",
        sha256="f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        style="twitter",
        license="CC-BY-4.0 (Twemoji graphics, Twitter, Inc and contributors); MIT (data)",
    ),
)
"""The packages `fetch` downloads, one per style."""

STYLES: Final = tuple(package.style for package in PACKAGES)
"""The styles in the corpus, in the order their images are stored."""

_SIZE: Final = 64
_NAME: Final = "emoji"


def corpus_dir() -> Path:
    """Where the emoji corpus lives: ``<cache>/data/emoji``."""
    return cache.data_dir() / _NAME


def load() -> Corpus:
    """Load the fetched emoji corpus.

    Raises:
        RankerError: It has not been fetched (the message says to run ``make data``), or is damaged.
    """
    directory = corpus_dir()
    if not (directory / CORPUS_FILE).is_file():
        raise RankerError(
            f"the emoji corpus is not fetched (no {directory / CORPUS_FILE}): run `make data` "
            "(or `python -m rankers fetch`)"
        )
    return read(directory)


def fetch(*, npm: str = "npm", force: bool = False) -> Path:
    """Download the emoji packages (once) and build the emoji corpus (once).

    Args:
        npm: The npm executable.
        force: Rebuild the corpus even if it exists (the tarballs are still reused if intact).

    Returns:
        The corpus folder.

    Raises:
        RankerError: npm is missing or fails, a tarball's checksum differs from the pinned one, or
            an image in the packages cannot be decoded.
    """
    directory = corpus_dir()
    if not force and (directory / CORPUS_FILE).is_file():
        logger.info("emoji corpus already at %s", directory)
        return directory
    downloads = cache.data_dir() / "npm"
    tarballs = {package.style: _download(package, downloads, npm) for package in PACKAGES}
    corpus = _build(tarballs)
    sources = [
        {
            "package": package.name,
            "version": package.version,
            "sha256": package.sha256,
            "style": package.style,
            "license": package.license,
        }
        for package in PACKAGES
    ]
    write(corpus, directory, sources=sources)
    logger.info("wrote %d images to %s", len(corpus), directory)
    return directory


def _download(package: NpmPackage, downloads: Path, npm: str) -> Path:
    path = downloads / package.tarball
    if path.is_file() and file_sha256(path) == package.sha256:
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    executable = shutil.which(npm)
    if executable is None:
        raise RankerError(f"`{npm}` not found: install Node.js and npm to fetch the emoji corpus")
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pack-") as staging:
        spec = f"{package.name}@{package.version}"
        logger.info("npm pack %s", spec)
        try:
            subprocess.run(
                [executable, "pack", spec, "--pack-destination", staging, "--silent"],
                check=True,
                capture_output=True,
                text=True,
                cwd=staging,
            )
        except subprocess.CalledProcessError as error:
            lines = (error.stderr or "").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {error.returncode}"
            raise RankerError(f"`npm pack {spec}` failed: {reason}") from error
        packed = Path(staging) / package.tarball
        if not packed.is_file():
            raise RankerError(f"`npm pack {spec}` did not write {package.tarball}")
        actual = file_sha256(packed)
        if actual != package.sha256:
            raise RankerError(
                f"{package.tarball} has sha256 {actual}, expected {package.sha256}: "
                "the registry served different bytes for a pinned version"
            )
        os.replace(packed, path)
    return path


def _build(tarballs: dict[str, Path]) -> Corpus:
    members = {style: _read_members(path, style) for style, path in tarballs.items()}
    entries = json.loads(members[STYLES[0]]["package/emoji.json"])
    entries.sort(key=lambda entry: (entry["sort_order"], entry["unified"]))
    kept = [
        entry
        for entry in entries
        if all(
            entry.get(f"has_img_{style}") and _image_member(style, entry["image"]) in members[style]
            for style in STYLES
        )
    ]
    ids: list[str] = []
    pixels: list[npt.NDArray[np.uint8]] = []
    styles: list[str] = []
    concepts: list[str] = []
    subcategories: list[str] = []
    categories: list[str] = []
    files: list[str] = []
    for style in STYLES:
        for entry in kept:
            member = _image_member(style, entry["image"])
            try:
                rgb = images.decode(members[style][member])
            except ImageError as error:
                raise RankerError(f"{member} in {tarballs[style].name}: {error}") from error
            if rgb.shape != (_SIZE, _SIZE, 3):
                rgb = _fit(rgb)
            ids.append(f"{style}/{Path(entry['image']).stem}")
            pixels.append(rgb)
            styles.append(style)
            concepts.append(str(entry["unified"]))
            subcategories.append(str(entry["subcategory"]))
            categories.append(str(entry["category"]))
            files.append(str(entry["image"]))
    return Corpus.from_arrays(
        _NAME,
        ids,
        np.stack(pixels),
        styles=styles,
        concepts=concepts,
        subcategories=subcategories,
        categories=categories,
        files=files,
    )


def _image_member(style: str, image: str) -> str:
    return f"package/img/{style}/{_SIZE}/{image}"


def _read_members(path: Path, style: str) -> dict[str, bytes]:
    prefix = f"package/img/{style}/{_SIZE}/"
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                wanted = member.name == "package/emoji.json" or (
                    member.name.startswith(prefix) and member.name.endswith(".png")
                )
                if wanted and member.isfile():
                    stream = archive.extractfile(member)
                    if stream is not None:
                        found[member.name] = stream.read()
    except (OSError, tarfile.TarError) as error:
        raise RankerError(f"cannot read {path}: {error}: delete it and fetch again") from error
    if "package/emoji.json" not in found:
        raise RankerError(f"{path} has no package/emoji.json")
    return found


def _fit(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    # Every 64-pixel PNG in the pinned packages is 64 x 64; this only guards against a repackaging.
    from PIL import Image

    resized = Image.fromarray(rgb).resize((_SIZE, _SIZE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)
