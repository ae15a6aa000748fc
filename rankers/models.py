"""The registry of embedding model versions, by name.

Every bundled ``rankers/models/<name>/manifest.toml`` is registered under its folder name (the
manifest's ``name`` must agree), plus the raw-pixel baseline ``"pixels-16"``. Registration only
records where each model is; `load_embedder` parses the manifest, checks the model's sha256 and
opens it.

    >>> from rankers.models import load_embedder, names
    >>> names()
    ('effnet-lite0', 'effnet-lite0-int8', 'effnet-lite2', 'pixels-16')
    >>> embedder = load_embedder("effnet-lite0", threads=1)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from rankers.embedder import Embedder, OnnxEmbedder, PixelEmbedder
from rankers.errors import ManifestError, UnknownItemError
from rankers.manifest import ModelManifest, parse

__all__ = [
    "MODELS_DIR",
    "EmbedderFactory",
    "ModelManifest",
    "bundled",
    "load_embedder",
    "manifest",
    "names",
    "register",
]

MODELS_DIR: Final = Path(__file__).resolve().parent / "models"
"""The folder of bundled models, one sub-folder with a ``manifest.toml`` each."""

EmbedderFactory = Callable[[int | None, bool], Embedder]
"""Makes an embedder from (onnxruntime threads or None for the default, whether idle threads
spin)."""

_FACTORIES: dict[str, EmbedderFactory] = {}
_MANIFESTS: dict[str, Path] = {}


def register(name: str, factory: EmbedderFactory) -> None:
    """Make an embedder loadable by name.

    Raises:
        ValueError: `name` is empty or already registered.
    """
    if not name:
        raise ValueError("name must be a non-empty string")
    if name in _FACTORIES:
        raise ValueError(f"a model named {name!r} is already registered")
    _FACTORIES[name] = factory


def names() -> tuple[str, ...]:
    """The registered model names, sorted."""
    return tuple(sorted(_FACTORIES))


def bundled() -> tuple[str, ...]:
    """The names of the registered models that have a manifest (every one but the baselines)."""
    return tuple(sorted(_MANIFESTS))


def manifest(name: str) -> ModelManifest:
    """The parsed manifest of a bundled model.

    Raises:
        UnknownItemError: No bundled model has that name.
        ManifestError: Its manifest is invalid or names another model.
    """
    try:
        path = _MANIFESTS[name]
    except KeyError:
        raise UnknownItemError(
            f"no bundled model named {name!r} (bundled: {', '.join(bundled()) or 'none'})"
        ) from None
    parsed = parse(path)
    if parsed.name != name:
        raise ManifestError(f"{path}: name is {parsed.name!r}, but its folder is {name!r}")
    return parsed


def load_embedder(name: str, *, threads: int | None = None, spin: bool = True) -> Embedder:
    """Load a registered model.

    Args:
        name: A name from `names`.
        threads: onnxruntime intra-op threads (ignored by the pixel baseline); None: the CPUs
            available.
        spin: Let onnxruntime's idle threads spin for the next task (fastest when the model has
            the cores to itself); False when several models run at once on the same cores, as
            in the server, where spinning threads take the CPU the other model needs.

    Raises:
        UnknownItemError: No model has that name.
        ManifestError: The model's files do not match its manifest.
        ValueError: `threads` is not positive.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise UnknownItemError(
            f"no model named {name!r} (known: {', '.join(names()) or 'none'})"
        ) from None
    return factory(threads, spin)


def _bundled_factory(name: str) -> EmbedderFactory:
    def load(threads: int | None, spin: bool) -> Embedder:
        return OnnxEmbedder.from_manifest(manifest(name).directory, threads=threads, spin=spin)

    return load


def _pixels(threads: int | None, spin: bool) -> Embedder:
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return PixelEmbedder(16)


def _register_bundled() -> None:
    for path in sorted(MODELS_DIR.glob("*/manifest.toml")):
        _MANIFESTS[path.parent.name] = path
        register(path.parent.name, _bundled_factory(path.parent.name))


register("pixels-16", _pixels)
_register_bundled()
