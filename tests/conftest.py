import pytest
import torch

import attnzoo


def build(name: str, channels: int, **options) -> torch.nn.Module:
    """An attention or fusion module by registered name."""
    if name in attnzoo.list_fusion():
        return attnzoo.create_fusion(name, channels, **options)
    return attnzoo.create_attn(name, channels, **options)


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
    return module


ALL_MODULES = attnzoo.list_attn() + attnzoo.list_fusion()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
