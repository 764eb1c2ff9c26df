import pytest
import torch

import attnzoo
from attnzoo.viz import box_mask, grad_cam, mass_in_box, uniform_share


def test_map_concentrated_on_box_scores_one_and_uniform_scores_area_share():
    boxes = torch.tensor([[2, 4, 10, 12], [0, 0, 24, 6]])
    inside = box_mask(boxes, (24, 24)).float()
    torch.testing.assert_close(mass_in_box(inside, boxes, (24, 24)), torch.ones(2))
    uniform = torch.ones(2, 24, 24)
    expected = torch.tensor([64 / 576, 144 / 576])
    torch.testing.assert_close(mass_in_box(uniform, boxes, (24, 24)), expected)
    torch.testing.assert_close(uniform_share(boxes, (24, 24)), expected)


def test_low_resolution_uniform_map_still_scores_area_share():
    boxes = torch.tensor([[6, 6, 18, 18]])
    torch.testing.assert_close(mass_in_box(torch.ones(1, 6, 6), boxes, (24, 24)), torch.tensor([144 / 576]))


def test_bad_maps_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        mass_in_box(-torch.ones(1, 4, 4), torch.tensor([[0, 0, 2, 2]]), (4, 4))
    with pytest.raises(ValueError, match=r"expected maps \(N, h, w\)"):
        mass_in_box(torch.ones(4, 4), torch.tensor([[0, 0, 2, 2]]), (4, 4))


def test_grad_cam_matches_definition():
    model = attnzoo.create_model("cifar_resnet8", num_classes=10).eval()
    x = torch.randn(2, 3, 16, 16)
    cam = grad_cam(model, x, "layer2", target=3)
    assert cam.shape == (2, 8, 8) and cam.min() >= 0 and torch.allclose(cam.flatten(1).amax(1), torch.ones(2))
    acts = {}
    model.layer2.register_forward_hook(lambda m, i, o: acts.__setitem__("a", o))
    logits = model(x.requires_grad_())
    (g,) = torch.autograd.grad(logits[:, 3].sum(), acts["a"])
    ref = torch.relu((g.mean((2, 3), keepdim=True) * acts["a"]).sum(1)).detach()
    torch.testing.assert_close(cam, ref / ref.flatten(1).amax(1)[:, None, None])
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_unknown_layer():
    model = attnzoo.create_model("cifar_resnet8", num_classes=10)
    with pytest.raises(ValueError, match="no layer 'layer9'"):
        grad_cam(model, torch.randn(1, 3, 8, 8), "layer9")
