"""The ops on a CUDA device (their Triton kernels) against the reference equations. Skipped without
one; scripts/gpu_bench.sh runs it on a lent GPU machine. On CPU the same check runs on the PyTorch
kernels, so the checking code itself is tested everywhere."""

import pytest
import torch

from attnzoo.ops import library
from attnzoo.ops.checks import against_reference


def test_the_check_passes_on_the_cpu_kernels():
    rows = against_reference("cpu", smoke=True)
    assert rows and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (scripts/gpu_bench.sh on a GPU machine)")
def test_the_cuda_kernels_match_the_reference():
    x = torch.randn(2, 3, 4, 5, device="cuda")
    assert library.triton_for(x) is not None, "on CUDA the Triton kernels are the default"
    bad = [r for r in against_reference("cuda") if not r["ok"]]
    assert not bad, bad
