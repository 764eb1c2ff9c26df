import numpy as np
import pytest
from PIL import Image

from attnzoo.cli import main


def test_viz_writes_figures_for_every_family(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["viz", "--model", "cifar_resnet8", "--attn", "cbam", "--fusion", "aff", "--sample", "digits:3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer1.0.attn.spatial (spatial)" in printed
    for name in ("spatial.png", "channels.png", "fusion.png"):
        with Image.open(out / name) as img:
            assert img.size[0] > 600 and img.size[1] > 250


def test_viz_self_attention_and_hacnn_regions(tmp_path):
    assert main(["viz", "--model", "cifar_resnet8", "--attn", "self_attn", "--sample", "digits", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "self_attention.png").is_file()
    assert main(["viz", "--model", "hacnn", "--sample", "digits", "--out", str(tmp_path / "h")]) == 0
    assert (tmp_path / "h" / "regions.png").is_file() and (tmp_path / "h" / "fusion.png").is_file()


def test_viz_image_file(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)).save(path)
    assert main(["viz", str(path), "--model", "cifar_resnet8", "--attn", "ha_soft", "--out", str(tmp_path / "f"), "--layers", "layer3"]) == 0
    assert (tmp_path / "f" / "spatial.png").is_file()


def test_viz_rejects_non_image_and_models_without_attention(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(SystemExit) as e:
        main(["viz", str(bad), "--model", "cifar_resnet8", "--attn", "se", "--out", str(tmp_path)])
    assert e.value.code == 2 and "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["viz", "--model", "cifar_resnet8", "--sample", "digits", "--out", str(tmp_path)])
    assert "no attention modules" in capsys.readouterr().err


def test_16_bit_and_float_images_keep_their_range(tmp_path):
    # PIL's convert("RGB") clips 16-bit values at 255 (a 16-bit PNG came out 99.6% white) and
    # turns float TIFFs black; viz reads them as the ImageFolder loader does.
    from attnzoo.viz.run import load_image

    ramp = np.linspace(0, 65535, 40 * 30).reshape(40, 30).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    image, _, _ = load_image(str(tmp_path / "deep.png"))
    assert 0.45 < image.mean() < 0.55 and image.min() == 0.0 and image.max() == 1.0
    Image.fromarray(np.full((20, 20), 0.25, dtype=np.float32), mode="F").save(tmp_path / "float.tif")
    image, _, _ = load_image(str(tmp_path / "float.tif"))
    assert abs(image.mean() - 0.25) < 0.01


def test_a_decompression_bomb_is_one_line(tmp_path, monkeypatch):
    from attnzoo.viz.run import load_image

    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels: over twice the limit raises
    with pytest.raises(ValueError, match="bomb.png is refused as a decompression bomb"):
        load_image(str(tmp_path / "bomb.png"))
