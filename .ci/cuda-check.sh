#!/usr/bin/env bash
# Type-checks the GPU build (`--features cuda`) on a machine without a GPU, so the CUDA
# path always compiles: nvcc and the CUDA headers come from PyPI's CUDA 13.0 wheels
# (pinned: later ones emit PTX a 580-series driver may refuse), installed into
# .cuda-venv/. candle-kernels compiles its kernels with that nvcc for sm_90 (H100/H200);
# about 5 minutes on 2 idle cores. Usage: .ci/cuda-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cuda-venv
if [ ! -x "$venv/bin/pip" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --no-cache-dir --disable-pip-version-check \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85

CUDA_HOME=$(echo "$PWD/$venv"/lib/python3*/site-packages/nvidia/cu13)
if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "no nvcc under $CUDA_HOME after installing the wheels" >&2
    exit 1
fi
export CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-2}"
nvcc --version | tail -n 1
cargo check -p rlpt-pipeline --features cuda --all-targets --locked
