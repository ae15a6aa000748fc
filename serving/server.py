"""Run the service under uvicorn (what ``python -m serving`` does)."""

from __future__ import annotations

import fcntl
import gc
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import polars as pl
from litestar import Litestar
from litestar.types import LifespanHook

from rankers.errors import RankerError
from serving.app import create_app
from serving.config import Config, load_config
from serving.errors import ConflictError, ExperimentError

__all__ = ["check_log_dir_free", "run"]

logger = logging.getLogger(__name__)


def check_log_dir_free(config: Config) -> None:
    """Fail early, with one line, if another server holds the log directory.

    Raises:
        ConflictError: The log directory is locked by a running server.
    """
    lock = Path(config.log.directory) / ".lock"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConflictError(
            f"log directory {config.log.directory} is in use by another server"
        ) from None
    finally:
        os.close(fd)  # closing releases the probe's lock


def _fatal_in_one_line(hook: LifespanHook) -> Callable[[Litestar], Awaitable[None]]:
    """`hook` (a start-up hook of the app), whose expected failures end the process with one
    line and exit status 1, as a bad configuration does: a log directory that cannot be used,
    or a log that contradicts the configuration, is found only once the service opens it, and
    Litestar would report it as a lifespan traceback."""

    async def guarded(app: Litestar) -> None:
        call = cast("Callable[..., object]", hook)  # as Litestar calls a hook
        try:
            result = call(app) if inspect.signature(call).parameters else call()
            if inspect.isawaitable(result):
                await result
        except (ExperimentError, RankerError, OSError, pl.exceptions.PolarsError) as error:
            logger.error("cannot start: %s", error)
            logging.shutdown()
            sys.stdout.flush()
            os._exit(1)  # nothing was served or acknowledged; uvicorn would print a traceback

    return guarded


def _freeze_heap() -> None:
    """Hide the start-up heap (corpus, models, indexes, replayed state) from the collector.

    A full collection walks every tracked object: without this, each one stalls the event
    loop for tens of milliseconds, which is most of the p99 latency under load.
    """
    gc.collect()
    gc.freeze()
    logger.info("froze %d start-up objects out of garbage collection", gc.get_freeze_count())


def _one_blas_thread() -> None:
    """Run BLAS on the calling thread only.

    The server's matrix products are small (a batch of queries times an index's projection),
    and OpenBLAS's idle workers spin for a while after each one, on the cores onnxruntime
    needs: with them, uploads ran at 66-71 requests/s, without them at 87.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _compile_preprocessing() -> None:
    """Load the compiled resize (rankers._resample) now, not on the first upload."""
    import numpy as np

    from rankers._resample import resample_normalise

    unit = np.ones(3, np.float32)
    out = np.empty((3, 2, 2), np.float32)
    box = np.asarray([0, 0, 1, 1], np.float32)
    resample_normalise(np.zeros((1, 1, 3), np.uint8), 2, 2, box, unit, unit, True, False, out)


def run(
    config_path: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    log_dir: str | None = None,
) -> None:
    """Load the configuration, build the app and serve it until interrupted.

    Raises:
        ConfigError: The configuration, corpus or a ranker cannot be loaded.
        ConflictError: Another server holds the log directory.
    """
    import uvicorn

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(config_path).with_overrides(host=host, port=port, log_dir=log_dir)
    check_log_dir_free(config)
    logger.info("loading the corpus and %d ranker(s)", len(config.rankers))
    app = create_app(config)
    _one_blas_thread()
    _compile_preprocessing()
    app.on_startup[:] = [_fatal_in_one_line(hook) for hook in app.on_startup]
    app.on_startup.append(_freeze_heap)
    app.on_startup.append(
        lambda: logger.info(
            "log directory %s opened; uvicorn binds http://%s:%d next",
            config.log.directory,
            config.host,
            config.port,
        )
    )
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        lifespan="on",
        timeout_graceful_shutdown=10,
        access_log=False,
    )
