"""Retrofit: attention added to a pretrained plain network changes none of its predictions."""

import pytest
import torch

import attnzoo
from attnzoo.layers.residual_mix import ResidualMix


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    torch.manual_seed(0)
    model = attnzoo.create_model("cifar_resnet8", num_classes=10)
    with torch.no_grad():  # a "pretrained" network: BN statistics away from their initial values
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("plain") / "plain.pth"
    torch.save(model.state_dict(), path)
    return model.eval(), path


@pytest.mark.parametrize("kind, name", [("attn", n) for n in attnzoo.list_attn()] + [("fusion", n) for n in attnzoo.list_fusion()])
def test_every_module_retrofits_without_changing_a_prediction(plain, kind, name):
    model, path = plain
    fitted = attnzoo.create_model("cifar_resnet8", num_classes=10, weights=path, **{kind: name}).eval()
    inserted = [m for m in fitted.modules() if isinstance(m, ResidualMix) or getattr(m, "identity_at_init", False)]
    assert inserted
    x = torch.randn(4, 3, 24, 24)
    with torch.no_grad():
        assert (fitted(x) - model(x)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("name", ["se", "cbam", "self_attn", "aff"])
def test_retrofitted_modules_train(plain, name):
    model, _ = plain
    fitted = attnzoo.retrofit(attnzoo.create_model("cifar_resnet8", num_classes=10), **({"fusion": name} if name == "aff" else {"attn": name}))
    fitted.load_state_dict(model.state_dict(), strict=False)
    x, y = torch.randn(8, 3, 24, 24), torch.randint(0, 10, (8,))
    mix = next((m for m in fitted.modules() if isinstance(m, ResidualMix)), None)
    if mix is None:  # inserted as is (identity at init): its own γ is what moves first
        mix = next(m for m in fitted.modules() if getattr(m, "identity_at_init", False))
        torch.nn.functional.cross_entropy(fitted(x), y).backward()
        assert mix.gamma.grad.abs().sum() > 0
        return
    torch.nn.functional.cross_entropy(fitted(x), y).backward()
    assert mix.gamma.grad is not None and mix.gamma.grad.abs().item() > 0  # γ moves from the first step
    with torch.no_grad():
        mix.gamma.fill_(0.1)
    fitted.zero_grad()
    torch.nn.functional.cross_entropy(fitted(x), y).backward()
    inner = [p for p in mix.module.parameters() if p.requires_grad]
    assert inner and any(p.grad is not None and p.grad.abs().sum() > 0 for p in inner)  # then the module learns


def test_retrofit_refuses_blocks_that_already_have_attention():
    with pytest.raises(ValueError, match="already has attn"):
        attnzoo.retrofit(attnzoo.create_model("cifar_resnet8", attn="se"), attn="cbam")


@pytest.mark.parametrize("kind, name", [("attn", n) for n in attnzoo.list_attn()] + [("fusion", n) for n in attnzoo.list_fusion()])
def test_retrofit_and_create_model_retrofit_build_the_same_model(plain, kind, name):
    # One placement rule (models/slots.py): danet, ccnet & co. sit once after the last stage in
    # both (retrofit() once put a head meant to run once into every block).
    model, _ = plain
    torch.manual_seed(1)
    fitted = attnzoo.retrofit(model, **{kind: name})
    built = attnzoo.create_model("cifar_resnet8", num_classes=10, retrofit=True, **{kind: name})
    assert list(fitted.state_dict()) == list(built.state_dict())
    built.load_state_dict(fitted.state_dict())
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(built.eval()(x), fitted.eval()(x))
    assert fitted is not model and not any(isinstance(m, ResidualMix) for m in model.modules())  # a copy by default


def test_retrofit_inplace_edits_the_model_itself():
    model = attnzoo.create_model("cifar_resnet8", num_classes=10)
    assert attnzoo.retrofit(model, attn="se", inplace=True) is model
    assert isinstance(model.layer1[0].attn, ResidualMix)
