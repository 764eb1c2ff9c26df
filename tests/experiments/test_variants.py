import pytest

from attnzoo.experiments.variants import ABLATION_GROUPS, PRESETS, parse_variants
from attnzoo.models.spec import ModelSpec, parse_variant


@pytest.mark.parametrize("text", ["plain", "se", "self_attn@3", "cbam:variant=paper", "cbam:kernel_size=3", "cbam@23:kernel_size=3,variant=paper+aff",
                                  "se:reduction=8", "mscam:branches=local_local", "sk", "aff@3:scale=2.0"])
def test_label_round_trip(text):
    spec = parse_variant(text)
    assert parse_variant(spec.label) == spec


def test_per_variant_options_reach_the_model():
    spec = parse_variant("cbam:kernel_size=3,variant=paper")
    assert spec.attn == "cbam" and spec.attn_options == {"kernel_size": 3, "variant": "paper"}
    model = spec.build(10)
    cbam = model.layer1[0].attn
    assert cbam.spatial.conv.kernel_size == (3, 3) and cbam.spatial.variant == "paper"
    assert parse_variant("self_attn@3").build(10).layer1[0].attn is None


def test_label_is_canonical():
    assert parse_variant("cbam:variant=paper,kernel_size=3").label == "cbam:kernel_size=3,variant=paper"
    assert ModelSpec(attn="se", attn_stages=[3, 2]).label == "se@23"


@pytest.mark.parametrize("text, message", [
    ("sse", "unknown module 'sse'"),
    ("se+cbam", "names two attn modules"),
    ("cbam:foo=1", "unknown option foo; valid options: reduction"),
    ("se:reduction=abc", "option reduction='abc' must be a number"),
    ("se:reduction", "expected KEY=VALUE"),
    ("se@x", "stages after '@' must be digits"),
    ("sk@3", "takes no @stages"),
])
def test_bad_variants_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_variant(text)
    assert "\n" not in str(e.value)


def test_parse_variants_adds_plain_and_refuses_duplicates():
    assert [s.label for s in parse_variants(["se"], "cifar_resnet8")] == ["plain", "se"]
    with pytest.raises(ValueError, match="more than once"):
        parse_variants(["se", "se:reduction=16.0", "se"], "cifar_resnet8")


def test_presets_parse():
    for preset in PRESETS.values():
        parse_variants(preset["variants"], preset.get("model", "cifar_resnet8"))
    assert all(v in PRESETS["ablations"]["variants"] for group in ABLATION_GROUPS.values() for v in group)
    assert PRESETS["ablations"]["seeds"] >= 5


def _compare_args(*argv):
    from attnzoo.cli import build_parser, compare
    from attnzoo.cli.options import explicit_dests

    parser = build_parser()
    args = parser.parse_args(["compare", *argv])
    args.argv, args.explicit = ["compare", *argv], explicit_dests(parser, ["compare", *argv])
    compare.apply_preset(args)
    return args


def test_the_fashion_preset_sets_its_data_and_budget_and_flags_override_it():
    from attnzoo.train import TrainConfig

    args = _compare_args("--preset", "fashion")
    assert (args.dataset, args.model, args.train_size, args.epochs, args.seeds) == ("fashion-mnist", "cifar_resnet20", 5000, 5, 5)
    assert {"plain", "se", "cbam", "eca", "self_attn@3", "aff", "iaff", "ha_soft", "cbam_channel", "cbam_spatial"} == set(args.variants)
    args = _compare_args("--preset", "fashion", "--train-size", "600", "--epochs", "2", "--dataset", "mnist")
    assert (args.dataset, args.train_size, args.epochs) == ("mnist", 600, 2)
    full = _compare_args("--preset", "fashion-full")
    assert full.train_size is None and (full.epochs, full.batch_size) == (30, 128)
    # Every preset key is a variant list, a seed count or a training field.
    fields = {f.name for _, f in TrainConfig.fields()}
    assert all(set(p) - {"variants", "seeds"} <= fields for p in PRESETS.values())
    plain = _compare_args()
    assert (plain.dataset, plain.model, plain.epochs) == ("digits", "cifar_resnet8", 8)
