"""Grad-CAM (Selvaraju et al., ICCV 2017): gradient-weighted class activation maps for any layer."""

from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn


def _resolve(model: nn.Module, layer: Union[str, nn.Module]) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ValueError(f"grad_cam: model has no layer {layer!r}; top-level layers: {', '.join(names)}") from None


def grad_cam(model: nn.Module, x: torch.Tensor, layer: Union[str, nn.Module], target: Optional[Union[int, torch.Tensor]] = None) -> torch.Tensor:
    """``ReLU(Σ_k α_k A^k)`` with ``α_k`` the spatial mean of ``∂y_c/∂A^k``, at ``layer``'s output.

    ``target``: class index (or one per sample); default the predicted class. Returns ``(N, h, w)``
    at the layer's resolution, each map scaled to max 1 (all-zero maps stay 0). The model is
    run in eval mode; its parameters' ``.grad`` are left untouched.
    """
    module = _resolve(model, layer)
    saved: dict[str, torch.Tensor] = {}

    def hook(_m, _i, out):
        out = out[0] if isinstance(out, (tuple, list)) else out
        saved["act"] = out

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # Models whose eval output is not class scores (HA-CNN: an embedding) expose classify().
            logits = getattr(model, "classify", model)(x)
            logits = sum(logits) if isinstance(logits, (tuple, list)) else logits
            if target is None:
                target = logits.argmax(1)
            target = torch.as_tensor(target, device=logits.device).expand(logits.shape[0])
            score = logits.gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(score, saved["act"])
    finally:
        handle.remove()
        model.train(was_training)
    act = saved["act"].detach()
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1))
    peak = cam.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
    return cam / peak
