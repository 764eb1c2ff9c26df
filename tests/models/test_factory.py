import pytest

import attnzoo


def test_list_models():
    assert attnzoo.list_models() == sorted(
        ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "sknet50", "resnest50",
         "cifar_resnet8", "cifar_resnet20", "cifar_resnet32", "cifar_resnet56", "cifar_resnet110", "hacnn",
         "botnet50", "lambda_resnet50", "mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"]
    )


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet51'; valid names: .*resnet50"):
        attnzoo.create_model("resnet51")


def test_unknown_attention_in_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown attention module 'sse'; valid names: .*se"):
        attnzoo.create_model("resnet18", attn="sse")
    with pytest.raises(ValueError, match=r"unknown fusion module 'sum'; valid names: add, aff, iaff"):
        attnzoo.create_model("resnet18", fusion="sum")


def test_num_classes_reaches_the_head():
    assert attnzoo.create_model("resnet18", num_classes=5).fc.out_features == 5
    assert attnzoo.create_model("hacnn", num_classes=5).classifier_global.out_features == 5
