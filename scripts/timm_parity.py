"""Side-by-side with timm: parameter counts, and outputs with timm's weights copied into attnzoo's modules.

Needs timm, so it runs only in the peer venv (never a dependency of attnzoo or its tests):
    V=$(bash ../shared/tools/peer-venv.sh | tail -1) && "$V/bin/pip" install -q -e . --no-deps
    "$V/bin/python" scripts/timm_parity.py > docs/bench/timm-parity.md
"""

from __future__ import annotations

import torch
import timm
from timm.layers import create_attn
from timm.layers.halo_attn import HaloAttn
from timm.layers.lambda_layer import LambdaLayer

import attnzoo

C = 256


def count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def randomize(m: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m.eval()


def copy_in_order(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """timm's state dict into ours, entry by entry (the modules hold the same tensors in the same order)."""
    ours = dst.state_dict()
    dst.load_state_dict({k: v.reshape(ours[k].shape) for k, v in zip(ours, src.state_dict().values())})


def max_diff(a: torch.Tensor, b: torch.Tensor) -> str:
    """Largest absolute difference, and relative to the largest output value."""
    d = (a - b).abs().max().item()
    return f"{d:.1e} ({d / a.abs().max().item():.0e})"


def same_layout_rows():
    """(timm type, ours, our options): modules whose state dicts line up entry by entry."""
    return [("ecam", "ecam", {"bias": True}), ("ceca", "ceca", {}), ("gc", "gca", {}),
            ("gca", "gc", {"reduction": 8, "min_hidden": 1, "ln_eps": 1e-6}), ("lcbam", "lcbam", {}),
            ("scoord", "scoord", {}), ("strip", "strip", {}), ("ela", "ela", {"variant": "timm"}), ("bat", "bat", {})]


def rows():
    x = torch.randn(2, C, 14, 14, generator=torch.Generator().manual_seed(1))
    for timm_name, ours, options in same_layout_rows():
        t, o = randomize(create_attn(timm_name, C)), attnzoo.create_attn(ours, C, **options).eval()
        copy_in_order(t, o)
        with torch.no_grad():
            yield timm_name, f"`{ours}`" + (f" {options}" if options else ""), count(t), count(o), max_diff(t(x), o(x)), ""
    t = randomize(create_attn("bottleneck", C, feat_size=(14, 14), scale_pos_embed=True))
    o = attnzoo.create_conv("bottleneck", C, feat_size=14).eval()
    with torch.no_grad():
        o.qkv.weight.copy_(t.qkv.weight)
        o.pos.height.copy_(t.pos_embed.height_rel)
        o.pos.width.copy_(t.pos_embed.width_rel)
        yield "bottleneck (feat 14, scale_pos_embed=True)", "`bottleneck` {'feat_size': 14}", count(t), count(o), max_diff(t(x), o(x)), ""
    t = randomize(LambdaLayer(C, r=9))
    o = attnzoo.create_conv("lambda", C, radius=9).eval()
    with torch.no_grad():
        t.conv_lambda.bias.zero_()
        o.qkv.weight.copy_(t.qkv.weight)
        o.position.weight.copy_(t.conv_lambda.weight[..., 0])
        o.norm_q.load_state_dict(t.norm_q.state_dict())
        o.norm_v.load_state_dict(t.norm_v.state_dict())
        yield "lambda (r = 9, its bias set to 0)", "`lambda` {'radius': 9}", count(t), count(o), max_diff(t(x), o(x)), "timm's lambda conv has a bias (+16)"
    heads, d, s = 8, C // 8, 3
    t = randomize(HaloAttn(C, block_size=8, halo_size=s, scale_pos_embed=True))
    o = attnzoo.create_conv("halo", C).eval()
    with torch.no_grad():
        o.q.weight.copy_(t.q.weight)
        o.kv.weight.copy_(t.kv.weight.view(heads, 2, d, C, 1, 1).transpose(0, 1).reshape(2 * C, C, 1, 1))  # timm: [k_h; v_h] per head
        o.pos.height.copy_(t.pos_embed.height_rel[2 * s:])  # the rows timm ever indexes
        o.pos.width.copy_(t.pos_embed.width_rel[2 * s:])
        big = torch.randn(2, C, 24, 24, generator=torch.Generator().manual_seed(2))
        centre = (t(big) - o(big))[:, :, 8:16, 8:16]  # the block whose window never leaves the image
        yield "halo (scale_pos_embed=True), centre block of 24×24", "`halo`", count(t), count(o), max_diff(t(big)[:, :, 8:16, 8:16], t(big)[:, :, 8:16, 8:16] - centre), \
            "timm's tables have 27 rows per axis, 21 reachable"


FAMILIES = (("mobilenetv3_large_100", "mobilenet_v3_large"), ("mobilenetv3_small_100", "mobilenet_v3_small"),
            ("efficientnet_b0", "efficientnet_b0"), ("convnext_tiny", "convnext_tiny"))


def family_rows():
    """timm's whole models, their weights perturbed and saved in timm's layout, loaded through
    attnzoo.create_model(weights=...) (source detected) and compared in float64 on 2×3×224×224."""
    import tempfile

    from safetensors.torch import save_file

    for timm_name, name in FAMILIES:
        t = timm.create_model(timm_name).eval()
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in t.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
            for key, b in t.named_buffers():
                if key.endswith("running_var"):
                    b.copy_(torch.rand(b.shape, generator=g) + 0.5)
        with tempfile.TemporaryDirectory() as folder:
            path = f"{folder}/w.safetensors"
            save_file({k: v.contiguous() for k, v in t.state_dict().items()}, path)
            o = attnzoo.create_model(name, weights=path).eval()
        x = torch.randn(2, 3, 224, 224, generator=g, dtype=torch.float64)
        with torch.no_grad():
            diff = max_diff(t.double()(x), o.double()(x))
        yield timm_name, f"`{name}`", count(t), count(o), diff, o.weights_report.source + " layout, detected"


def main() -> None:
    print(f"# attnzoo vs timm {timm.__version__}: parameters at C = {C} and outputs with timm's weights copied in\n")
    print("Produced by `scripts/timm_parity.py` in the peer venv (torch", torch.__version__ + ").",
          "Inputs 2×256×14×14, random weights (N(0, 0.3²)), eval mode; the difference is the largest absolute",
          "difference of the outputs (in brackets: relative to the largest output value).\n")
    print("| timm type | attnzoo | timm params | attnzoo params | max abs diff (rel.) | note |")
    print("|---|---|---|---|---|---|")
    for row in rows():
        print("| " + " | ".join(str(v) if not isinstance(v, int) else f"{v:,}" for v in row) + " |")
    print("\nWhole models with timm's weights (perturbed, saved in timm's layout) loaded by `create_model(name, weights=...)`;",
          "float64, 2×3×224×224, eval mode:\n")
    print("| timm model | attnzoo | timm params | attnzoo params | max abs diff (rel.) | note |")
    print("|---|---|---|---|---|---|")
    for row in family_rows():
        print("| " + " | ".join(str(v) if not isinstance(v, int) else f"{v:,}" for v in row) + " |")


if __name__ == "__main__":
    main()
