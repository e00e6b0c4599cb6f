#!/usr/bin/env bash
# Creates tests/hf/.venv with what the Hugging Face interop tests need
# (tests/hf/requirements.txt); the e2e tests find it there. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --no-cache-dir --disable-pip-version-check -r requirements.txt
.venv/bin/python -c 'import torch, transformers, trl; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__)'
