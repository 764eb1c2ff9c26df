import pytest
import torch

import attnzoo


def test_parameter_count_matches_torchreid_with_751_classes():
    assert attnzoo.count_params(attnzoo.create_model("hacnn", num_classes=751)) == 3_699_638


def test_train_mode_returns_logits_of_both_branches():
    model = attnzoo.create_model("hacnn", num_classes=11).train()
    g, l = model(torch.randn(2, 3, 160, 64))
    assert g.shape == (2, 11) and l.shape == (2, 11)
    (g.sum() + l.sum()).backward()
    # the hard attention learns through grid_sample
    assert model.ha2.hard.fc.weight.grad.abs().sum() > 0


def test_eval_mode_returns_normalised_1024_feature():
    model = attnzoo.create_model("hacnn", num_classes=11).eval()
    with torch.no_grad():
        f = model(torch.randn(3, 3, 160, 64))
    assert f.shape == (3, 1024)
    torch.testing.assert_close(f[:, :512].norm(dim=1), torch.ones(3))
    torch.testing.assert_close(f[:, 512:].norm(dim=1), torch.ones(3))


def test_wrong_input_size():
    model = attnzoo.create_model("hacnn").eval()
    with pytest.raises(ValueError, match=r"HACNN: expected input of shape \(N, 3, 160, 64\), got \(1, 3, 128, 64\)"):
        model(torch.randn(1, 3, 128, 64))


def test_attention_arguments_rejected():
    with pytest.raises(ValueError, match="hacnn has its own"):
        attnzoo.create_model("hacnn", attn="se")
