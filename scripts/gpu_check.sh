#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU and CuPy installed: the test suite on the
# CuPy backend (the fused kernels against the generic path, and, where PyTorch has CUDA,
# its CUDA graphs against eager steps), then the full-batch benchmark on CuPy against
# PyTorch CUDA (xpnet on CuPy eager and with its fused kernels; xpnet on PyTorch CUDA
# eager and compiled into CUDA graphs), and, where JAX has a GPU, xpnet compiled on JAX.
# Prints the tables; writes them and their JSON to benchmarks/gpu/DATE-GPU/ (or $OUT_DIR),
# inside the repository, so that the figures can be committed beside the code that made
# them (each JSON names the xpnet commit it ran).
#
#   bash scripts/gpu_check.sh            # about five minutes on an H200: tests 2, benchmark 3
#
# Each part has a time limit (tests 150 s, CuPy benchmark 270 s, JAX 90 s: under ten
# minutes in all); a benchmark that reaches its limit still writes the rows it finished.
#
# Extra arguments go to bench.py, e.g. `bash scripts/gpu_check.sh --no-memory`.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 \
      | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//')
OUT_DIR="${OUT_DIR:-benchmarks/gpu/$(date -u +%Y-%m-%d)-${gpu:-unknown-gpu}}"
mkdir -p "$OUT_DIR"
scratch=$(mktemp -d)  # the command's model file: not a figure, not kept
trap 'rm -rf "$scratch"' EXIT

echo "== machine"
nvidia-smi
"$PYTHON" - <<'PY'
import sys
import cupy
import numpy
print("python", sys.version.split()[0], "| numpy", numpy.__version__, "| cupy", cupy.__version__)
print("CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
      "| driver", cupy.cuda.runtime.driverGetVersion(),
      "| devices", cupy.cuda.runtime.getDeviceCount())
try:
    import torch
    print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())
except ImportError:
    print("torch is not installed: the benchmark runs without its PyTorch CUDA peers")
PY

status=0

echo "== tests on the CuPy backend"
start=$SECONDS
# A failing test does not stop the check: the benchmark still runs and the exit status says.
timeout 150 "$PYTHON" -m pytest --backend cupy -q -ra -p no:cacheprovider || status=$?
echo "tests took $((SECONDS - start)) s (exit status $status)"

echo "== the xpnet command, end to end on the GPU (digits, float32)"
"$PYTHON" -m xpnet train --backend cupy --dtype float32 --save "$scratch/digits_cupy.npz" \
    || status=$?
"$PYTHON" -m xpnet evaluate --model "$scratch/digits_cupy.npz" --backend cupy || status=$?
echo "== the same job with --engine jit (the fused kernels): the accuracy should be the same"
"$PYTHON" -m xpnet train --backend cupy --dtype float32 --engine jit --quiet || status=$?

echo "== benchmark: xpnet on CuPy, floor cupy.matmul, peers PyTorch CUDA"
start=$SECONDS
timeout 270 "$PYTHON" scripts/bench.py --backend cupy --rounds 5 --target-seconds 0.2 \
    --json "$OUT_DIR/gpu_bench.json" --markdown "$OUT_DIR/gpu_bench.md" "$@" || status=$?
echo "benchmark took $((SECONDS - start)) s; table in $OUT_DIR/gpu_bench.md"

# xpnet compiled on JAX's GPU against JAX's compiled floor, where JAX has one.
if "$PYTHON" -c 'import jax, sys; sys.exit(jax.default_backend() != "gpu")' 2>/dev/null; then
    echo "== benchmark: xpnet compiled on JAX's GPU (engine='jit'), floor jax.jit"
    timeout 90 "$PYTHON" scripts/bench.py --backend jax --rounds 3 --target-seconds 0.2 \
        --no-memory --json "$OUT_DIR/gpu_bench_jax.json" \
        --markdown "$OUT_DIR/gpu_bench_jax.md" || status=$?
else
    echo "== JAX has no GPU here: no JAX benchmark"
fi
exit "$status"
