"""usearch 2.26.2+ crashes when onnxruntime is imported after it: keep a test that would catch it.

The pin in pyproject.toml keeps a working usearch; `rankers.index.import_usearch` also imports
onnxruntime first. This test imports them in the dangerous order, on purpose, in a fresh process,
then searches an index and runs a real inference session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from rankers import models

SCRIPT = textwrap.dedent(
    """
    import sys

    import numkong  # rankers.index imports it at the top, before usearch and onnxruntime
    import usearch.index  # first: the order that crashes usearch 2.26.2 and later
    import onnxruntime
    import numpy as np

    assert "onnxruntime" in sys.modules
    index = usearch.index.Index(ndim=8, metric="cos", dtype="f16")
    vectors = np.random.default_rng(0).random((100, 8), dtype=np.float32)
    index.add(np.arange(100), vectors)
    assert index.search(vectors[3], 5).keys[0] == 3
    halves = vectors.astype(np.float16)
    dots = np.asarray(numkong.cdist(halves, halves[3:4], "dot", out_dtype="float32")).ravel()
    assert int(np.argmax(dots / np.linalg.norm(vectors, axis=1))) == 3
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    (embedding,) = session.run(["embedding"], {"image": np.zeros((1, 3, 224, 224), np.float32)})
    assert embedding.shape == (1, 1280), embedding.shape
    print("ok", usearch.__version__ if hasattr(usearch, "__version__") else "")
    """
)


def test_usearch_then_onnxruntime_in_one_process() -> None:
    model = models.manifest("effnet-lite0").model_path
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.startswith("ok")


def test_importing_rankers_loads_neither_heavy_dependency() -> None:
    code = (
        "import sys, rankers, rankers.models, rankers.index, rankers.indexing, rankers.__main__;"
        "print(sorted(m for m in ('onnxruntime', 'usearch', 'polars') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
