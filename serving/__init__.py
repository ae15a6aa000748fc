"""The search service: Litestar endpoints, the experiment engine and durable logs.

>>> from serving import create_app, load_config
>>> app = create_app(load_config())  # doctest: +SKIP

Run it with ``python -m serving [--config FILE]`` (see `serving.config` for the file format).
The names below are imported on first use, so ``python -m serving --help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.app import create_app
    from serving.config import Config, ExperimentConfig, load_config
    from serving.errors import ExperimentError

__all__ = ["Config", "ExperimentConfig", "ExperimentError", "create_app", "load_config"]

_HOMES = {
    "Config": "serving.config",
    "ExperimentConfig": "serving.config",
    "ExperimentError": "serving.errors",
    "create_app": "serving.app",
    "load_config": "serving.config",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'serving' has no attribute {name!r}")
