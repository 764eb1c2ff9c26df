#!/usr/bin/env bash
# The GPU check of the op layer, as one prepared command for a lent CUDA machine (about 5 minutes on
# an H100/H200; the machine needs only torch with CUDA, triton and, for the comparison, timm):
#
#   PYTHONPATH=src bash scripts/gpu_bench.sh [OUT]      # default OUT: docs/bench/gpu
#
# 1. the CUDA kernels against the reference ops (pytest tests/ops on CUDA tensors, then the
#    kernel table of scripts/gpu_bench.py), 2. modules and 3. ResNet-50 models, eager and compiled,
#    bf16 + channels-last, timm beside them where it imports. Results: OUT/*.json, *.md, models.png.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/docs/bench/gpu}"
mkdir -p "$out"
cd "$repo"
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script measures a GPU')" || exit 2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/machine.txt" 2>&1
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)" >> "$out/machine.txt" 2>&1
status=0
# The CUDA kernels against the reference on CUDA tensors (ATTNZOO_TEST_DEVICE=cuda; no interpreter).
ATTNZOO_TEST_DEVICE=cuda TRITON_INTERPRET=0 timeout 150 python -m pytest -q -x tests/ops/test_cuda.py > "$out/kernel-tests.txt" 2>&1 || status=1
tail -3 "$out/kernel-tests.txt"
timeout 420 python scripts/gpu_bench.py --out "$out" "${@:2}" || status=1
ls -l "$out"
exit $status
