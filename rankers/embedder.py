"""Image embedders: images in, L2-normalised float32 vectors out.

`Embedder` is the plug point. `OnnxEmbedder` runs a pretrained ONNX model described by a
`rankers.manifest.ModelManifest`, after checking the model file's sha256; `PixelEmbedder` is the
raw-pixel baseline (and the in-memory implementation tests use). Both turn any (H, W, 3) uint8 RGB
image into a unit vector, so cosine similarity is a dot product.

Preprocessing follows the manifest exactly (`preprocess`): resize the shorter side to ``resize``
pixels (torchvision's ``Resize(int)`` rounding), centre-crop ``input_size`` pixels (torchvision's
``CenterCrop``), then ``(x - mean) / std`` per channel and the manifest's channel order and layout.
The resize and crop are one Pillow call over the crop's source box, which gives the pixels of
resizing the whole image then cropping (to within one level of rounding when shrinking) without
resizing pixels the crop throws away, so a 1 x 10,000 banner stays cheap. For the bilinear filter
and sources up to 16 times the crop's pixels (the corpora's 28 and 64 px images, most uploads'
thumbnails), `rankers._resample` computes the same values bit for bit, fused with the
normalisation, in a sixth of the time.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

from rankers.cache import file_sha256
from rankers.errors import ManifestError, RankerError
from rankers.images import check_rgb
from rankers.manifest import ModelManifest, Resample, parse

__all__ = [
    "Embedder",
    "Images",
    "OnnxEmbedder",
    "PixelEmbedder",
    "ReplicatedEmbedder",
    "SessionPool",
    "StagedEmbedder",
    "as_images",
    "default_threads",
    "file_sha256",
    "preprocess",
    "resize_and_crop",
]

Images = npt.NDArray[np.uint8] | Sequence[npt.NDArray[np.uint8]]
"""A batch of RGB images: one (n, H, W, 3) uint8 array, or a sequence of (H, W, 3) uint8 arrays."""

_RESAMPLE: Final = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@runtime_checkable
class Embedder(Protocol):
    """Maps RGB images to L2-normalised vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """The registry name (``"effnet-lite0"``)."""
        ...

    @property
    def version(self) -> str:
        """The model version; a new version needs a new index."""
        ...

    @property
    def dim(self) -> int:
        """The embedding dimension."""
        ...

    @property
    def sha256(self) -> str:
        """Identifies the exact weights (or configuration); indexes record it."""
        ...

    def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed `images`, returning (n, dim) float32 rows of unit length."""
        ...


@runtime_checkable
class StagedEmbedder(Embedder, Protocol):
    """An embedder whose CPU-side preparation can run on another thread while the model runs.

    ``embed(images)`` equals ``infer(prepare(as_images(images)))``; the indexer overlaps ``prepare``
    of batch i + 1 with ``infer`` of batch i.
    """

    def prepare(self, frames: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """Preprocess checked (H, W, 3) uint8 images into one model input batch."""
        ...

    def infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run the model on a prepared batch: (n, dim) float32 unit rows."""
        ...


def as_images(images: Images) -> Sequence[npt.NDArray[np.uint8]]:
    """Check a batch of images and return it as a sequence of (H, W, 3) uint8 arrays.

    Raises:
        TypeError: `images` is not a uint8 array or a sequence of them.
        ValueError: An image does not have shape (H, W, 3), or a single image was passed as a batch.
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8 RGB, got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[3] != 3 or min(images.shape[1:3], default=0) < 1:
            raise ValueError(
                f"images must have shape (n, H, W, 3), got {images.shape} "
                "(for a single image pass image[None])"
            )
        return list(images)
    if not isinstance(images, Sequence) or isinstance(images, str | bytes):  # type: ignore[unreachable]
        raise TypeError(f"images must be an array or a sequence of arrays, not {type(images)}")
    return [check_rgb(image, f"images[{i}]") for i, image in enumerate(images)]


def resize_and_crop(
    image: npt.NDArray[np.uint8], *, resize: int, size: int, resample: Resample = "bilinear"
) -> npt.NDArray[np.uint8]:
    """Resize the shorter side of `image` to `resize`, then centre-crop a `size` x `size` square.

    Equivalent to torchvision's ``CenterCrop(size)(Resize(resize)(image))`` on a Pillow image.

    Args:
        image: (H, W, 3) uint8 RGB.
        resize: The shorter side after resizing.
        size: The side of the square crop; at most `resize`.
        resample: The Pillow filter.

    Returns:
        (size, size, 3) uint8.

    Raises:
        ValueError: `size` exceeds `resize`, or either is not positive.
    """
    if size <= 0 or resize < size:
        raise ValueError(f"need 0 < size <= resize, got size={size}, resize={resize}")
    check_rgb(image)
    box = _crop_box(image.shape[0], image.shape[1], resize=resize, size=size)
    pillow = Image.fromarray(np.ascontiguousarray(image))
    cropped = pillow.resize((size, size), _RESAMPLE[resample], box=box)
    return np.asarray(cropped, dtype=np.uint8)


def _crop_box(
    height: int, width: int, *, resize: int, size: int
) -> tuple[float, float, float, float]:
    """The source box of the centre `size` crop of the image resized to shorter side `resize`."""
    if width <= height:
        new_width, new_height = resize, int(resize * height / width)
    else:
        new_width, new_height = int(resize * width / height), resize
    top = round((new_height - size) / 2.0)
    left = round((new_width - size) / 2.0)
    scale_x, scale_y = width / new_width, height / new_height
    return (left * scale_x, top * scale_y, (left + size) * scale_x, (top + size) * scale_y)


_COMPILED_MAX_SOURCE: Final = 16
"""The compiled bilinear path serves sources up to this many times the crop's pixels; Pillow is
faster on larger ones (it reads the source in place, the compiled path copies each channel)."""


def preprocess(
    image: npt.NDArray[np.uint8],
    manifest: ModelManifest,
    *,
    out: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Turn one RGB image into the model input the manifest describes, without the batch axis.

    Args:
        image: (H, W, 3) uint8 RGB.
        manifest: The model's manifest.
        out: Where to write the result (a row of a batch), instead of a new array.

    Returns:
        float32 (3, S, S) for ``layout = "NCHW"`` or (S, S, 3) for ``"NHWC"``, S = ``input_size``:
        ``(x - mean) / std`` of each channel, computed in float32.
    """
    side = manifest.input_size
    shape = (3, side, side) if manifest.layout == "NCHW" else (side, side, 3)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 {shape}, got {out.dtype} {out.shape}")
    mean = np.asarray(manifest.mean, dtype=np.float32)
    std = np.asarray(manifest.std, dtype=np.float32)
    check_rgb(image)
    height, width = image.shape[:2]
    if manifest.resample == "bilinear" and height * width <= _COMPILED_MAX_SOURCE * side * side:
        # Pillow's bilinear filter, bit for bit, fused with the normalisation: 50 us for a 64 px
        # image where Pillow and numpy take 300 (see rankers._resample).
        from rankers._resample import resample_normalise

        box = np.asarray(_crop_box(height, width, resize=manifest.resize, size=side), np.float32)
        resample_normalise(
            np.ascontiguousarray(image),
            side,
            side,
            box,
            mean,
            std,
            manifest.layout == "NCHW",
            manifest.color == "BGR",
            out,
        )
        return out
    pixels = resize_and_crop(image, resize=manifest.resize, size=side, resample=manifest.resample)
    if manifest.color == "BGR":
        pixels = pixels[:, :, ::-1]
    if manifest.layout == "NCHW":
        pixels, mean, std = pixels.transpose(2, 0, 1), mean[:, None, None], std[:, None, None]
    # Two float32 ufunc passes straight into `out` (the cast fused into the first): a quarter
    # of the time of a per-channel lookup table, which gives the same values.
    np.subtract(pixels, mean, out=out, dtype=np.float32)
    np.divide(out, std, out=out)
    return out


def default_threads() -> int:
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxEmbedder:
    """A pretrained ONNX image model run by onnxruntime on the CPU.

    Build it with `from_manifest`, which checks the model file against the manifest's sha256 first.
    `embed` preprocesses the next batch on a worker thread while onnxruntime runs the current one.
    Safe to share between threads (onnxruntime sessions are).
    """

    __slots__ = ("_batch_limit", "_manifest", "_session", "_threads")

    def __init__(self, manifest: ModelManifest, session: Any, *, threads: int) -> None:
        """Wrap an open onnxruntime session; prefer `from_manifest`.

        Raises:
            ManifestError: The session's inputs or outputs do not match the manifest.
        """
        self._manifest = manifest
        self._session = session
        self._threads = threads
        self._batch_limit = _check_session(session, manifest)

    @classmethod
    def from_manifest(
        cls, path: str | os.PathLike[str], *, threads: int | None = None, spin: bool = True
    ) -> OnnxEmbedder:
        """Load the model a ``manifest.toml`` describes.

        Args:
            path: The manifest, or the folder holding ``manifest.toml``.
            threads: onnxruntime intra-op threads; defaults to the CPUs available.
            spin: Whether idle intra-op threads spin waiting for work (onnxruntime's default);
                turn off when other sessions share the cores.

        Returns:
            The embedder.

        Raises:
            ManifestError: The manifest is invalid, the model file is missing, its sha256 differs
                from the manifest's, or its inputs and outputs differ from the manifest's.
            RankerError: onnxruntime is not installed or cannot load the model.
            ValueError: `threads` is not positive.
        """
        path = Path(path)
        manifest = parse(path / "manifest.toml" if path.is_dir() else path)
        if threads is None:
            threads = default_threads()
        elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        model = manifest.model_path
        try:
            actual = file_sha256(model)
        except OSError as error:
            raise ManifestError(
                f"{manifest.name}: cannot read model file {model}: {error.strerror}"
            ) from error
        if actual != manifest.sha256:
            raise ManifestError(
                f"{manifest.name}: {model.name} has sha256 {actual}, but its manifest says "
                f"{manifest.sha256}: the file is corrupt or from another model version"
            )
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise RankerError(
                f"{manifest.name}: onnxruntime cannot load {model}: {error}"
            ) from error
        return cls(manifest, session, threads=threads)

    @property
    def name(self) -> str:
        """The manifest's name."""
        return self._manifest.name

    @property
    def version(self) -> str:
        """The manifest's version."""
        return self._manifest.version

    @property
    def dim(self) -> int:
        """The manifest's embedding dimension."""
        return self._manifest.embedding_dim

    @property
    def sha256(self) -> str:
        """The sha256 of the model file (checked on load)."""
        return self._manifest.sha256

    @property
    def manifest(self) -> ModelManifest:
        """The manifest this model was loaded from."""
        return self._manifest

    @property
    def threads(self) -> int:
        """onnxruntime's intra-op thread count."""
        return self._threads

    def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed `images` in batches of `batch_size`.

        Returns:
            (n, dim) float32, each row of unit length.

        Raises:
            TypeError, ValueError: Bad `images` or `batch_size`.
            RankerError: The model returned the wrong shape or non-finite values.
        """
        frames = as_images(images)
        size = _check_batch_size(batch_size)
        if self._batch_limit is not None:
            size = min(size, self._batch_limit)
        if not frames:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((len(frames), self.dim), dtype=np.float32)
        starts = range(0, len(frames), size)
        if len(starts) == 1:
            out[:] = self.infer(self.prepare(frames))
            return out
        # onnxruntime releases the GIL: preparing batch i + 1 overlaps running batch i.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="preprocess") as pool:
            pending = pool.submit(self.prepare, frames[0:size])
            for start in starts:
                batch = pending.result()
                following = start + size
                if following < len(frames):
                    pending = pool.submit(self.prepare, frames[following : following + size])
                out[start : start + batch.shape[0]] = self.infer(batch)
        return out

    def prepare(self, frames: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """`preprocess` each checked image into one model input batch."""
        side = self._manifest.input_size
        row = (3, side, side) if self._manifest.layout == "NCHW" else (side, side, 3)
        batch = np.empty((len(frames), *row), dtype=np.float32)
        for position, frame in enumerate(frames):
            preprocess(frame, self._manifest, out=batch[position])
        return batch

    def infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run the model on a `prepare`d batch (no larger than the model's fixed batch size).

        Returns:
            (n, dim) float32 unit rows.

        Raises:
            ManifestError: The model's output dimension differs from the manifest's.
            RankerError: The model returned non-finite values.
        """
        manifest = self._manifest
        (raw,) = self._session.run([manifest.output_name], {manifest.input_name: batch})
        vectors = np.asarray(raw, dtype=np.float32).reshape(batch.shape[0], -1)
        if vectors.shape[1] != manifest.embedding_dim:
            raise ManifestError(
                f"{manifest.name} returned {vectors.shape[1]}-d vectors, "
                f"its manifest says {manifest.embedding_dim}"
            )
        if not np.isfinite(vectors).all():
            raise RankerError(f"{manifest.name} returned non-finite values")
        return _unit_rows(vectors)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self.name!r}, version={self.version!r}, threads={self.threads})"


class SessionPool:
    """Worker threads shared by the `ReplicatedEmbedder`s of several models.

    Worker i runs replica i of whichever model a job is for, so a session never runs twice at
    once and at most `workers` sessions compute at any moment. Models served side by side then
    share the cores without crowding them, and a worker that finishes its share of one model's
    batch takes the next job of any model at once: no core waits for the slowest share of a
    batch while another model has work (on 2 cores with two models: idle CPU 7% -> 2%, and
    5% more uploads served; see `serving.loading`).
    """

    __slots__ = ("_closed", "_jobs", "_lock", "_threads")

    def __init__(self, workers: int, *, name: str = "session") -> None:
        """Start `workers` threads (daemons: a pool left open does not hold up exit).

        Raises:
            ValueError: `workers` is not positive.
        """
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[int], Any]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._closed = False
        self._threads = tuple(
            threading.Thread(target=self._work, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        )
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        """The number of worker threads."""
        return len(self._threads)

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def submit(self, fn: Callable[[int], Any]) -> Future[Any]:
        """Run ``fn(worker index)`` on the next free worker.

        Raises:
            RuntimeError: The pool is closed.
        """
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the session pool is closed")
            self._jobs.put((future, fn))
        return future

    def _work(self, index: int) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(index)
            except BaseException as error:  # handed to the caller, like a ThreadPoolExecutor
                future.set_exception(error)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Finish the jobs already submitted, then stop the workers (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def __repr__(self) -> str:
        return f"SessionPool(workers={self.workers}, closed={self._closed})"


class ReplicatedEmbedder:
    """Several single-threaded sessions of one model, each embedding its share of a batch.

    On a machine that also runs other work (a server with two models, say), one session per core
    with one thread each beats one session with a thread per core: the threads of a multi-threaded
    session meet at a barrier after every operator, and waking or waiting for a thread the OS has
    given to other work costs more than the operator. Each session here runs alone, and a batch of
    n images is cut into min(n, replicas) contiguous parts run at once (onnxruntime and the
    compiled preprocessing release the GIL). A batch of one image uses one core. Meant for one
    caller at a time (the server calls each model from one thread): concurrent callers share the
    sessions correctly but crowd the first one. Not a `StagedEmbedder`: an index build through it
    does not overlap preprocessing with the model.

    Given a `SessionPool`, the shares run on the pool's workers instead (the caller waits),
    worker i running replica i: the replicas of several models then share the pool's threads.
    """

    __slots__ = ("_pool", "_replicas", "_shared")

    def __init__(
        self, replicas: Sequence[OnnxEmbedder], *, pool: SessionPool | None = None
    ) -> None:
        """Wrap `replicas`, sessions of the same model file.

        Args:
            replicas: The sessions.
            pool: Workers shared with other models' replicas; it must have one worker per
                replica. None: this embedder runs its shares on threads of its own.

        Raises:
            ValueError: No replicas, replicas of different models, or a pool of another size.
        """
        if not replicas:
            raise ValueError("need at least one replica")
        if len({replica.sha256 for replica in replicas}) != 1:
            raise ValueError("replicas must be sessions of the same model file")
        if pool is not None and pool.workers != len(replicas):
            raise ValueError(
                f"a pool of {pool.workers} workers cannot run {len(replicas)} replicas"
            )
        self._replicas = tuple(replicas)
        self._shared = pool
        self._pool = (
            ThreadPoolExecutor(len(replicas) - 1, thread_name_prefix=f"{replicas[0].name}-replica")
            if len(replicas) > 1 and pool is None
            else None
        )

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str], *, replicas: int) -> ReplicatedEmbedder:
        """`replicas` one-thread sessions of the model a manifest describes (no spinning threads).

        Raises:
            ValueError: `replicas` is not positive.
            ManifestError, RankerError: As `OnnxEmbedder.from_manifest`.
        """
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
        return cls(
            [OnnxEmbedder.from_manifest(path, threads=1, spin=False) for _ in range(replicas)]
        )

    @property
    def name(self) -> str:
        """The model's name."""
        return self._replicas[0].name

    @property
    def version(self) -> str:
        """The model's version."""
        return self._replicas[0].version

    @property
    def dim(self) -> int:
        """The embedding dimension."""
        return self._replicas[0].dim

    @property
    def sha256(self) -> str:
        """The sha256 of the model file."""
        return self._replicas[0].sha256

    @property
    def manifest(self) -> ModelManifest:
        """The model's manifest."""
        return self._replicas[0].manifest

    @property
    def replicas(self) -> int:
        """The number of sessions."""
        return len(self._replicas)

    @property
    def pool(self) -> SessionPool | None:
        """The pool the shares run on, when shared with other models."""
        return self._shared

    def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed `images`, each session taking a contiguous share.

        Returns:
            (n, dim) float32, each row of unit length; the rows are those one session gives.

        Raises:
            As `OnnxEmbedder.embed`.
        """
        frames = as_images(images)
        _check_batch_size(batch_size)
        parts = min(len(self._replicas), len(frames))
        if self._shared is not None and parts >= 1:
            bounds = [len(frames) * part // parts for part in range(parts + 1)]
            shares: list[Future[npt.NDArray[np.float32]]] = []
            try:
                for part in range(parts):
                    share = partial(
                        self._share, frames[bounds[part] : bounds[part + 1]], batch_size
                    )
                    shares.append(self._shared.submit(share))
            finally:
                wait(shares)  # no share left running after this call, whatever happened
            return np.concatenate([share.result() for share in shares])
        if parts <= 1 or self._pool is None:
            return self._replicas[0].embed(frames, batch_size=batch_size)
        bounds = [len(frames) * part // parts for part in range(parts + 1)]
        pending = [
            self._pool.submit(
                self._replicas[part].embed,
                frames[bounds[part] : bounds[part + 1]],
                batch_size=batch_size,
            )
            for part in range(1, parts)
        ]
        try:
            first = self._replicas[0].embed(frames[: bounds[1]], batch_size=batch_size)
        finally:
            wait(pending)  # no share left running after this call, whatever happened
        return np.concatenate([first, *(future.result() for future in pending)])

    def _share(
        self, frames: Sequence[npt.NDArray[np.uint8]], batch_size: int, worker: int
    ) -> npt.NDArray[np.float32]:
        return self._replicas[worker].embed(frames, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"ReplicatedEmbedder(name={self.name!r}, replicas={self.replicas})"


class PixelEmbedder:
    """The raw-pixel baseline: a small RGB thumbnail, mean-centred and L2-normalised.

    Each image is centre-cropped to a square and resized to `size` x `size` (Pillow bilinear, which
    averages when shrinking); the pixel values minus the image's own mean brightness are the vector.
    A flat image (no contrast) maps to the uniform unit vector, which is orthogonal to every other
    image's vector: similarity 0, not a division by zero.
    """

    __slots__ = ("_dim", "_sha256", "_size")

    def __init__(self, size: int = 16) -> None:
        """Configure the thumbnail side.

        Raises:
            ValueError: `size` is not a positive integer.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self._size = size
        self._dim = size * size * 3
        config = f"braid pixel embedder v1 size={size} resample=bilinear centre=image-mean"
        self._sha256 = hashlib.sha256(config.encode("ascii")).hexdigest()

    @property
    def name(self) -> str:
        """``"pixels-<size>"``."""
        return f"pixels-{self._size}"

    @property
    def version(self) -> str:
        """The version of the recipe."""
        return "1"

    @property
    def dim(self) -> int:
        """3 x size x size."""
        return self._dim

    @property
    def sha256(self) -> str:
        """The sha256 of the recipe's description (there are no weights)."""
        return self._sha256

    def embed(self, images: Images, *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed `images` (`batch_size` is checked but changes nothing).

        Returns:
            (n, dim) float32, each row of unit length.
        """
        frames = as_images(images)
        _check_batch_size(batch_size)
        return self.infer(self.prepare(frames))

    def prepare(self, frames: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """The mean-centred thumbnails of checked images, (n, dim) float32."""
        out = np.empty((len(frames), self._dim), dtype=np.float32)
        for row, frame in enumerate(frames):
            thumb = resize_and_crop(frame, resize=self._size, size=self._size).astype(np.float32)
            out[row] = (thumb - thumb.mean()).reshape(-1)
        return out

    def infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """L2-normalise prepared thumbnails."""
        return _unit_rows(batch)

    def __repr__(self) -> str:
        return f"PixelEmbedder(size={self._size})"


def _unit_rows(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    flat = norms[:, 0] <= 1e-12
    if flat.any():
        vectors = vectors.copy()
        vectors[flat] = 1.0
        norms[flat] = np.sqrt(vectors.shape[1])
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _check_session(session: Any, manifest: ModelManifest) -> int | None:
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name for node in session.get_outputs()}
    if manifest.input_name not in inputs:
        raise ManifestError(
            f"{manifest.name}: the model has no input {manifest.input_name!r} "
            f"(it has {', '.join(sorted(inputs))})"
        )
    if manifest.output_name not in outputs:
        raise ManifestError(
            f"{manifest.name}: the model has no output {manifest.output_name!r} "
            f"(it has {', '.join(sorted(outputs))})"
        )
    shape = list(inputs[manifest.input_name].shape)
    side = manifest.input_size
    expected = [3, side, side] if manifest.layout == "NCHW" else [side, side, 3]
    if len(shape) != 4 or any(
        isinstance(got, int) and got != want for got, want in zip(shape[1:], expected, strict=True)
    ):
        raise ManifestError(
            f"{manifest.name}: the model's input shape is {shape}, "
            f"but the manifest describes [batch, {', '.join(map(str, expected))}]"
        )
    batch = shape[0]
    return batch if isinstance(batch, int) and batch > 0 else None


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise RankerError(
            "onnxruntime is not installed: install Braid's dependencies (pip install onnxruntime)"
        ) from error
    return onnxruntime
