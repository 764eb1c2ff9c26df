import torch

from attnzoo.data import random_crop_flip


def test_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    out = random_crop_flip(x, 2, torch.Generator().manual_seed(0), flip=False)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for n in range(2):
        windows = [padded[n, :, i : i + 5, j : j + 5] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[n], w) for w in windows)


def test_flip_mirrors_some_samples_and_keeps_content():
    x = torch.randn(64, 3, 4, 4)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(0), flip=True)
    flipped = [torch.equal(o, xi.flip(2)) for o, xi in zip(out, x)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54


def test_shards_reproduce_the_global_batch():
    x = torch.randn(8, 3, 6, 6)
    full = random_crop_flip(x, 2, torch.Generator().manual_seed(5))
    parts = [random_crop_flip(x[r::2], 2, torch.Generator().manual_seed(5), shard=(r, 2)) for r in range(2)]
    torch.testing.assert_close(parts[0], full[0::2])
    torch.testing.assert_close(parts[1], full[1::2])
