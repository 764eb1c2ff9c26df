"""Published layouts load strictly into attnzoo models, which then compute what the source computes.

No weights can be downloaded here: each test writes a checkpoint in the source's key layout (read
from the source's code) and, where the source's module differs from attnzoo's default, checks the
loaded module against a reference written from the source's equations."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import attnzoo
from attnzoo.models.weights import SOURCES, load_weights, read_state_dict
from tests.conftest import randomize_


def _save(state, path, wrap=None, prefix=""):
    state = {prefix + k: v.clone() for k, v in state.items()}
    torch.save({wrap: state} if wrap else state, path)
    return path


def _out(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name, keys", [("resnet18", 122), ("resnet50", 320), ("resnext50_32x4d", 320)])
def test_torchvision_layout_is_attnzoos(name, keys, tmp_path):
    # torchvision's ResNets: conv1, bn1, layerN.i.{conv,bn}K, layerN.0.downsample.{0,1}, fc
    # (resnet18: 20 convs + 20 BNs × 5 tensors + fc 2 = 122 keys; resnet50: 53 + 53 × 5 + 2 = 320).
    source = attnzoo.create_model(name)  # (randomised BN statistics would overflow a deep net)
    assert len(source.state_dict()) == keys
    path = _save(source.state_dict(), tmp_path / "tv.pth")
    model = attnzoo.create_model(name, weights=path, source="torchvision")
    assert model.weights_report.loaded == keys and not model.weights_report.missing
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(_out(model, x), _out(source, x))


def test_timm_se_and_eca_layouts(tmp_path):
    for attn in ("se", "eca"):
        source = attnzoo.create_model("resnet18", attn=attn, attn_options=SOURCES["timm"].module_options[attn])
        randomize_(source.layer1)  # one stage's attention randomised: enough to tell a wrong mapping
        timm_state = {k.replace(".attn.", ".se."): v for k, v in source.state_dict().items()}  # timm: block.se.fc1 / block.se.conv
        assert "layer1.0.se.fc1.weight" in timm_state or "layer1.0.se.conv.weight" in timm_state
        path = _save(timm_state, tmp_path / f"{attn}.pth", wrap="state_dict")
        model = attnzoo.create_model("resnet18", attn=attn, weights=path)  # source detected: timm
        assert model.weights_report.source == "timm"
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(_out(model, x), _out(source, x))


def _timm_cbam_reference(p, x):
    """timm's CbamModule (timm/layers/cbam.py): ChannelAttn with bias-free fc1/fc2 on the avg and
    max pools, then SpatialAttn: cat([mean, max]) -> ConvNormAct(2, 1, 7) (conv, BN) -> sigmoid."""
    def mlp(v):
        return F.conv2d(F.relu(F.conv2d(v, p["channel.fc1.weight"])), p["channel.fc2.weight"])
    x = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    maps = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    z = F.conv2d(maps, p["spatial.conv.conv.weight"], padding=3)
    z = F.batch_norm(z, p["spatial.conv.bn.running_mean"], p["spatial.conv.bn.running_var"], p["spatial.conv.bn.weight"], p["spatial.conv.bn.bias"])
    return x * torch.sigmoid(z)


def _cbam_authors_reference(p, x):
    """The authors' CBAM (attention-module/MODEL/cbam.py): ChannelGate's Linear MLP (with bias) on
    the avg and max pools, then SpatialGate: ChannelPool = cat([max, mean]) -> conv (no bias) -> BN -> sigmoid."""
    def mlp(v):
        return F.linear(F.relu(F.linear(v, p["ChannelGate.mlp.1.weight"], p["ChannelGate.mlp.1.bias"])), p["ChannelGate.mlp.3.weight"], p["ChannelGate.mlp.3.bias"])
    x = x * torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    maps = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], 1)
    z = F.conv2d(maps, p["SpatialGate.spatial.conv.weight"], padding=3)
    bn = "SpatialGate.spatial.bn."
    return x * torch.sigmoid(F.batch_norm(z, p[bn + "running_mean"], p[bn + "running_var"], p[bn + "weight"], p[bn + "bias"]))


def _random_state(shapes):
    torch.manual_seed(0)
    return {k: (torch.rand(s) + 0.5 if "running_var" in k else torch.tensor(3) if "num_batches" in k else torch.randn(s) * 0.3)
            for k, s in shapes.items()}


def test_timm_cbam_computes_what_timm_computes(tmp_path):
    c, hidden = 64, 4  # timm: rd_channels = round(64 / 16) = 4, no lower bound of 8
    p = _random_state({"channel.fc1.weight": (hidden, c, 1, 1), "channel.fc2.weight": (c, hidden, 1, 1), "spatial.conv.conv.weight": (1, 2, 7, 7),
                       "spatial.conv.bn.weight": (1,), "spatial.conv.bn.bias": (1,), "spatial.conv.bn.running_mean": (1,),
                       "spatial.conv.bn.running_var": (1,), "spatial.conv.bn.num_batches_tracked": ()})
    donor = attnzoo.create_model("resnet18", attn="cbam", attn_options=SOURCES["timm"].module_options["cbam"])
    state = {k.replace(".attn.", ".se."): v for k, v in donor.state_dict().items() if ".attn." not in k}
    state.update({f"layer1.0.se.{k}": v for k, v in p.items()})
    for k, v in donor.state_dict().items():  # the other blocks' modules, in timm's names
        if ".attn." in k and not k.startswith("layer1.0."):
            timm_key = (k.replace(".attn.channel.mlp.0.", ".se.channel.fc1.").replace(".attn.channel.mlp.2.", ".se.channel.fc2.")
                        .replace(".attn.spatial.conv.", ".se.spatial.conv.conv.").replace(".attn.spatial.norm.", ".se.spatial.conv.bn."))
            state[timm_key] = v
    model = attnzoo.create_model("resnet18", attn="cbam", weights=_save(state, tmp_path / "timm_cbam.pth"), source="timm").eval()
    block = model.layer1[0].attn
    assert block.spatial.variant == "timm" and block.channel.mlp[0].bias is None and block.channel.mlp[0].out_channels == 4
    x = torch.randn(2, c, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _timm_cbam_reference(p, x))


def test_cbam_authors_layout_with_dataparallel_prefix(tmp_path):
    c, hidden = 64, 4  # the authors: gate_channels // 16, no lower bound
    p = _random_state({"ChannelGate.mlp.1.weight": (hidden, c), "ChannelGate.mlp.1.bias": (hidden,), "ChannelGate.mlp.3.weight": (c, hidden),
                       "ChannelGate.mlp.3.bias": (c,), "SpatialGate.spatial.conv.weight": (1, 2, 7, 7), "SpatialGate.spatial.bn.weight": (1,),
                       "SpatialGate.spatial.bn.bias": (1,), "SpatialGate.spatial.bn.running_mean": (1,), "SpatialGate.spatial.bn.running_var": (1,),
                       "SpatialGate.spatial.bn.num_batches_tracked": ()})
    p["SpatialGate.spatial.bn.num_batches_tracked"] = torch.tensor(7)
    donor = attnzoo.create_model("resnet18", attn="cbam", attn_options=SOURCES["cbam-authors"].module_options["cbam"])
    rename = {".attn.channel.mlp.0.": ".cbam.ChannelGate.mlp.1.", ".attn.channel.mlp.2.": ".cbam.ChannelGate.mlp.3.",
              ".attn.spatial.conv.": ".cbam.SpatialGate.spatial.conv.", ".attn.spatial.norm.": ".cbam.SpatialGate.spatial.bn."}
    state = {}
    for k, v in donor.state_dict().items():
        for a, b in rename.items():
            if a in k:
                k, v = k.replace(a, b), (v.flatten(1) if v.dim() == 4 and "ChannelGate" in b else v)  # nn.Linear weights
        state[k] = v
    state.update({f"layer1.0.cbam.{k}": v for k, v in p.items()})
    path = _save(state, tmp_path / "authors.pth.tar", wrap="state_dict", prefix="module.")
    model = attnzoo.create_model("resnet18", attn="cbam", weights=path).eval()  # detected: cbam-authors
    assert model.weights_report.source == "cbam-authors" and model.layer1[0].attn.spatial.variant == "official"
    x = torch.randn(2, c, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[0].attn(x), _cbam_authors_reference(p, x))
    assert model.layer1[0].attn.spatial.norm.momentum == 0.01  # the authors' BasicConv BN; after 3 batches eval differed by 0.23


def test_a_mismatch_is_one_error_listing_keys_and_counts(tmp_path):
    path = _save(attnzoo.create_model("resnet18", attn="se").state_dict(), tmp_path / "se.pth")
    with pytest.raises(ValueError) as e:
        load_weights(attnzoo.create_model("resnet18", num_classes=10), path, source="attnzoo")
    message = str(e.value)
    assert "\n" not in message
    assert "(attnzoo layout) does not fit the model: 32 unexpected: layer1.0.attn.fc1.bias, layer1.0.attn.fc1.weight" in message  # 8 blocks × 4
    assert "2 wrongly shaped: fc.bias (checkpoint (1000,), model (10,))" in message and "pass head='reinit'" in message


def test_head_reinit_is_reported_never_silent(tmp_path):
    path = _save(attnzoo.create_model("resnet18").state_dict(), tmp_path / "r18.pth")
    model = attnzoo.create_model("resnet18", num_classes=10)
    fresh_fc = model.fc.weight.clone()
    report = load_weights(model, path, head="reinit")
    assert report.reinitialised == ["fc.bias", "fc.weight"] and report.loaded == 120
    assert torch.equal(model.fc.weight, fresh_fc)
    assert "2 re-initialised head: fc.bias, fc.weight" in str(report)
    partial = load_weights(attnzoo.create_model("resnet18", attn="se"), path, strict=False)
    assert len(partial.missing) == 32 and partial.loaded == 122


def test_safetensors_and_refused_pickles(tmp_path):
    from safetensors.torch import save_file

    model = randomize_(attnzoo.create_model("cifar_resnet8", num_classes=10))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    assert len(read_state_dict(tmp_path / "w.safetensors")) == len(model.state_dict())
    torch.save({"state_dict": model.state_dict(), "note": ValueError("a class")}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="evil.pth: cannot load as weights with weights_only=True"):
        read_state_dict(tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="unknown weights source 'tf'; valid sources: auto, attnzoo, torchvision, timm, cbam-authors, torchreid"):
        load_weights(model, tmp_path / "w.safetensors", source="tf")


def _torchreid_key(key: str) -> str:
    """attnzoo HACNN key -> torchreid's (torchreid/models/hacnn.py: ConvBlock.conv / .bn, HarmAttn.soft_attn / hard_attn)."""
    import re

    key = key.replace(".soft.spatial.", ".soft_attn.spatial_attn.").replace(".soft.channel.", ".soft_attn.channel_attn.")
    key = key.replace(".soft.mix.", ".soft_attn.conv.").replace(".hard.", ".hard_attn.")
    if key.startswith(("fc_global.", "fc_local.")):  # nn.Sequential(Linear, BatchNorm1d, ReLU): same indices
        return key
    key = re.sub(r"(^|\.)0\.(weight|bias)$", r"\g<1>conv.\2", key)
    return re.sub(r"(^|\.)1\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r"\g<1>bn.\2", key)


def test_torchreid_hacnn_layout(tmp_path):
    donor = attnzoo.create_model("hacnn", num_classes=751, region_sampling="torchreid").eval()
    state = {_torchreid_key(k): v for k, v in donor.state_dict().items()}
    assert "conv.conv.weight" in state and "ha1.soft_attn.spatial_attn.conv1.conv.weight" in state and "ha1.hard_attn.fc.weight" in state
    assert "inception1.0.stream1.0.conv.weight" in state and "ha1.soft_attn.conv.bn.running_var" in state
    model = attnzoo.create_model("hacnn", num_classes=751, weights=_save(state, tmp_path / "hacnn_market.pth.tar", wrap="state_dict"))
    assert model.weights_report.source == "torchreid" and model.region_sampling == "torchreid"
    x = torch.randn(2, 3, 160, 64)
    torch.testing.assert_close(_out(model, x), _out(donor, x))


def test_torchreid_region_sampling_is_full_size_then_resize():
    from attnzoo.layers.hacnn import crop_regions

    x = torch.randn(2, 8, 20, 12)
    theta = torch.tensor([[1.0, 0, 0.1], [0, 0.25, -0.5]]).expand(2, 1, 2, 3)
    (got,) = crop_regions(x, theta, (6, 7), "torchreid")
    full = F.grid_sample(x, F.affine_grid(theta[:, 0], list(x.shape), align_corners=False), align_corners=False)
    torch.testing.assert_close(got, F.interpolate(full, size=(6, 7), mode="bilinear", align_corners=True))
    (direct,) = crop_regions(x, theta, (6, 7))
    assert not torch.allclose(direct, got)  # two different samplings: the option matters


def test_timm_skresnext_layout(tmp_path):
    # timm's SelectiveKernelBottleneck: conv1/conv3 are ConvNormAct (.conv, .bn); SelectiveKernel holds
    # paths.N.{conv,bn} and attn.{fc_reduce,bn,fc_select} (timm/models/sknet.py, timm/layers/selective_kernel.py).
    donor = attnzoo.create_model("sknet50", num_classes=10).eval()
    rename = [(".bn1.", ".conv1.bn."), (".bn3.", ".conv3.bn."), (".conv2.fc.0.", ".conv2.attn.fc_reduce."),
              (".conv2.fc.1.", ".conv2.attn.bn."), (".conv2.fc_select.", ".conv2.attn.fc_select.")]
    state = {}
    for k, v in donor.state_dict().items():
        if k.startswith("layer"):
            for a, b in rename:
                k = k.replace(a, b)
            k = k.replace(".conv1.weight", ".conv1.conv.weight").replace(".conv3.weight", ".conv3.conv.weight")
            for i in range(2):
                k = k.replace(f".conv2.paths.{i}.0.", f".conv2.paths.{i}.conv.").replace(f".conv2.paths.{i}.1.", f".conv2.paths.{i}.bn.")
        state[k] = v
    assert "layer1.0.conv2.attn.fc_reduce.weight" in state and "layer1.0.conv1.conv.weight" in state
    model = attnzoo.create_model("sknet50", num_classes=10, weights=_save(state, tmp_path / "sk.pth"))
    assert model.weights_report.source == "timm" and model.weights_report.loaded == len(state)
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(_out(model, x), _out(donor, x))


# timm's names for global context and non-local blocks (timm 1.0, resnet50 with block_args={"attn_layer": "gc"/"nl"};
# checked beside timm 1.0.31 in the peer venv: its outputs and attnzoo's agree to 7e-8).
TIMM_NAMES = {"gc": {".attn.attn_logits.": ".se.conv_attn.", ".attn.fc1.": ".se.mlp_scale.fc1.", ".attn.norm.": ".se.mlp_scale.norm.",
                     ".attn.fc2.": ".se.mlp_scale.fc2."},
              "nonlocal": {".attn.theta.": ".se.t.", ".attn.phi.": ".se.p.", ".attn.g.": ".se.g.", ".attn.out_conv.": ".se.z.",
                           ".attn.out_norm.": ".se.norm."}}


@pytest.mark.parametrize("attn", ["gc", "nonlocal"])
def test_timm_global_context_and_non_local_layouts(attn, tmp_path):
    source = attnzoo.create_model("resnet18", attn=attn, attn_options=SOURCES["timm"].module_options[attn])
    randomize_(source.layer1)
    state = {}
    for key, value in source.state_dict().items():
        for ours, theirs in TIMM_NAMES[attn].items():
            key = key.replace(ours, theirs)
        state[key] = value
    assert not any(".attn." in k for k in state)
    path = _save(state, tmp_path / f"{attn}.pth", wrap="state_dict")
    model = attnzoo.create_model("resnet18", attn=attn, weights=path)  # 64 missing + 64 unexpected keys before
    assert model.weights_report.source == "timm"
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(_out(model, x), _out(source, x))


def test_timm_forms_have_timms_widths():
    # timm 1.0.31, checked in the peer venv: CoordAttn widths 8/24/40/88 and EcaModule(use_mlp) widths
    # at every C = 8..2048 (step 8) agree with these (80 once gave 8 where timm has 16).
    coord = SOURCES["timm"].module_options["coord"]
    assert [attnzoo.create_attn("coord", c, **coord).conv1.out_channels for c in (256, 512, 1024, 2048)] == [8, 24, 40, 88]
    assert [attnzoo.create_attn("ecam", c, bias=True).conv1.out_channels for c in (72, 80, 144, 216, 256)] == [16, 16, 24, 32, 32]


def test_timm_widths_at_unusual_channel_counts():
    """Hidden widths and counts of timm 1.0.31's NonLocalAttn, GlobalContext and BatNonLocalAttn
    (read from timm in the peer venv) at the widths where attnzoo's differed before."""
    opts = SOURCES["timm"].module_options
    nonlocal_widths = [attnzoo.create_attn("nonlocal", c, **opts["nonlocal"]).theta.out_channels for c in (16, 32, 72, 80, 144)]
    assert nonlocal_widths == [8, 8, 16, 16, 24]
    assert [attnzoo.create_attn("gca", c, **opts["gc"]).fc1.out_channels for c in (12, 20, 100)] == [2, 3, 13]
    bat = [attnzoo.create_attn("bat", c) for c in (36, 72, 108)]
    assert [m.reduce[0].out_channels for m in bat] == [16, 24, 32]
    assert [sum(p.numel() for p in m.parameters()) for m in bat] == [4520, 7264, 11288]
    # The defaults that are not timm's stay the papers' (documented): C // r.
    assert attnzoo.create_attn("gca", 100).fc1.out_channels == 12 and attnzoo.create_attn("nonlocal", 72, reduction=8).theta.out_channels == 9


TIMM_KEYS = json.loads((Path(__file__).parents[1] / "fixtures" / "timm_keys.json").read_text())


# Hand-read from the two libraries' module trees: where a timm tensor lives in torchvision's nesting.
TIMM_PLACES = {
    "mobilenetv3_large_100": {"blocks.0.0.conv_pw.weight": "features.1.block.1.0.weight",
                              "blocks.2.0.se.conv_reduce.weight": "features.4.block.2.fc1.weight",
                              "blocks.2.0.bn3.running_var": "features.4.block.3.1.running_var",
                              "blocks.6.0.conv.weight": "features.16.0.weight", "conv_head.weight": "classifier.0.weight"},
    "mobilenetv3_small_100": {"blocks.0.0.se.conv_expand.bias": "features.1.block.1.fc2.bias",
                              "blocks.0.0.conv_pw.weight": "features.1.block.2.0.weight",
                              "blocks.1.1.conv_pwl.weight": "features.3.block.2.0.weight", "classifier.bias": "classifier.3.bias"},
    "efficientnet_b0": {"blocks.0.0.conv_pw.weight": "features.1.0.block.2.0.weight", "blocks.6.0.se.conv_reduce.bias": "features.7.0.block.2.fc1.bias",
                        "conv_head.weight": "features.8.0.weight", "bn2.running_mean": "features.8.1.running_mean"},
    "convnext_tiny": {"stages.1.downsample.1.weight": "features.2.1.weight", "stages.3.blocks.2.mlp.fc2.weight": "features.7.2.block.5.weight",
                      "stages.0.blocks.0.gamma": "features.1.0.layer_scale", "head.norm.bias": "classifier.0.bias"},
}


@pytest.mark.parametrize("timm_name, name", [("mobilenetv3_large_100", "mobilenet_v3_large"), ("mobilenetv3_small_100", "mobilenet_v3_small"),
                                             ("efficientnet_b0", "efficientnet_b0"), ("convnext_tiny", "convnext_tiny")])
def test_timm_layouts_of_the_other_families_load_strictly(tmp_path, timm_name, name):
    """A checkpoint with timm's keys and shapes (recorded from timm 1.0.31's state dicts in
    tests/fixtures/timm_keys.json) loads strictly, its layout detected, and each tensor lands where
    the two module trees say it belongs (each value is its own index). Outputs equal timm's to
    1e-15 in float64: scripts/timm_parity.py in the peer venv, docs/bench/timm-parity.md."""
    from safetensors.torch import save_file

    keys = TIMM_KEYS["models"][timm_name]
    index = {k: i for i, (k, _) in enumerate(keys)}
    save_file({k: torch.full(shape, float(i)) for i, (k, shape) in enumerate(keys)}, str(tmp_path / "w.safetensors"))
    model = attnzoo.create_model(name, weights=tmp_path / "w.safetensors")
    assert model.weights_report.source == "timm" and model.weights_report.loaded == len(keys)
    ours = model.state_dict()
    for theirs, mine in TIMM_PLACES[timm_name].items():
        assert float(ours[mine].flatten()[0]) == index[theirs], (theirs, mine)
    if name.startswith("mobilenet"):  # timm's ε, so that the model computes what timm's does
        assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}
