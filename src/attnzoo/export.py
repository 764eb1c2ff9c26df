"""Export a model for deployment, with a dynamic batch dimension.

- ``onnx``: ``torch.onnx.export(..., dynamo=True)``, the exporter torch uses by default since 2.9
  (needs ``onnxscript``; the ``export`` extra installs it with ``onnx`` and ``onnxruntime``).
- ``exported-program``: ``torch.export`` saved as ``.pt2`` (load with ``torch.export.load``).
- ``torchscript``: ``torch.jit.trace``. Tracing, not scripting: attnzoo's modules use Python
  features (registries, optional submodules, keyword options) that ``torch.jit.script`` does not
  compile; ``torch.export`` is PyTorch's supported path and the traced graph is the same model.

Every format is checked after writing: the file is loaded back and run at two batch sizes against
the eager model (relative error ≤ 1e-4, onnxruntime for ONNX).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

FORMATS = ("onnx", "exported-program", "torchscript")
SUFFIXES = {"onnx": ".onnx", "exported-program": ".pt2", "torchscript": ".pt"}
MAX_BATCH = 4096


def export_model(model: nn.Module, input_shape: Sequence[int], path: str | Path, fmt: str = "onnx") -> Path:
    """Write ``model`` (put in eval mode) for inputs ``(N, *input_shape)``, N dynamic."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    path = Path(path)
    model = model.eval()
    example = (torch.randn(2, *input_shape),)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' progress chatter
        if fmt == "onnx":
            _require("onnxscript", "onnx")
            program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=({0: batch},), input_names=["images"],
                                        output_names=["output"], verbose=False)
            program.save(str(path))
        elif fmt == "exported-program":
            torch.export.save(torch.export.export(model, example, dynamic_shapes=({0: batch},)), str(path))
        else:
            torch.jit.save(torch.jit.trace(model, example, check_trace=False), str(path))
    return path


def load_runner(path: str | Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function running an exported file on a batch (onnxruntime for ONNX)."""
    path = Path(path)
    if fmt == "onnx":
        _require("onnxruntime", "onnx")
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    if fmt == "exported-program":
        module = torch.export.load(str(path)).module()
        return lambda x: module(x)
    module = torch.jit.load(str(path))
    return lambda x: module(x)


def check_export(model: nn.Module, path: str | Path, fmt: str, input_shape: Sequence[int], batches: Sequence[int] = (1, 3),
                 rtol: float = 1e-4) -> float:
    """Largest relative difference between the exported file and eager ``model`` over ``batches``
    (relative to the largest output magnitude); ValueError past ``rtol``."""
    run = load_runner(path, fmt)
    worst = 0.0
    for n in batches:
        x = torch.randn(n, *input_shape)
        with torch.no_grad():
            expected = _first(model.eval()(x))
        got = _first(run(x))
        if got.shape != expected.shape:
            raise ValueError(f"{path}: output shape {tuple(got.shape)} at batch {n}, eager gives {tuple(expected.shape)}")
        if not torch.isfinite(expected).all():  # a NaN compares unequal to everything, and max() would drop it
            raise ValueError(f"{path}: the eager model's output is not finite at batch {n} ({_nonfinite(expected)}); "
                             "the model itself is broken, so there is nothing to check the export against")
        if not torch.isfinite(got).all():
            raise ValueError(f"{path}: the exported output is not finite at batch {n} ({_nonfinite(got)}), where eager's is")
        worst = max(worst, ((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12)).item())
    if worst > rtol:
        raise ValueError(f"{path}: exported output differs from eager by {worst:.2e} (relative), more than {rtol:g}")
    return worst


def _nonfinite(t: torch.Tensor) -> str:
    return f"{int(torch.isnan(t).sum())} NaN and {int(torch.isinf(t).sum())} infinite of {t.numel()} values"


def _first(y) -> torch.Tensor:
    return y[0] if isinstance(y, (tuple, list)) else y


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ValueError(f"{module} is not installed: pip install 'attnzoo[{extra}]' (or pip install {module})")


def input_shape_for(model_name: str, meta_shape: Optional[Sequence[int]] = None) -> tuple[int, ...]:
    """(C, H, W) of a model's inputs: a checkpoint's recorded shape, else the model's default."""
    if meta_shape:
        return tuple(meta_shape)
    from .models import default_input_size

    return (3, *default_input_size(model_name))
