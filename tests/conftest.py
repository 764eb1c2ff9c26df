import os

# Triton's kernels run on CPU through its interpreter in these tests (tests/ops/test_triton.py);
# Triton reads this when a kernel is decorated and again when it runs, so it is set for the session.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

import attnzoo


def build(name: str, channels: int, **options) -> torch.nn.Module:
    """An attention or fusion module by registered name."""
    return attnzoo.layers.create_module(name, channels, **options)


def inputs_for(name: str, shape, dtype=torch.float32, generator=None) -> tuple[torch.Tensor, ...]:
    """One input for an attention module, two for a fusion module."""
    count = 2 if name in attnzoo.list_fusion() else 1
    return tuple(torch.randn(shape, dtype=dtype, generator=generator) for _ in range(count))


def randomize_(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """Replace every parameter with random values, so zero-initialised gates (γ = 0, BN weight 0,
    a zero hard-attention weight) no longer hide the parameters behind them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
        for m in module.modules():  # BN as after some training: positive scales, eval statistics
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module


ALL_MODULES = attnzoo.list_attn() + attnzoo.list_fusion() + attnzoo.list_conv()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
