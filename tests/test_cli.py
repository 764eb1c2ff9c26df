import json
import re

import pytest

import attnzoo
from attnzoo.cli import main
from attnzoo.train import TrainConfig


def test_list_prints_every_module_with_params_and_macs(capsys):
    assert main(["list", "--channels", "64", "--size", "8", "--no-models", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [1, 64, 8, 8]
    assert [r["name"] for r in info["attention"]] == attnzoo.list_attn()
    assert [r["name"] for r in info["fusion"]] == attnzoo.list_fusion()
    by_name = {r["name"]: r for r in info["attention"] + info["fusion"]}
    assert by_name["mscam"]["params"] == 4576 and by_name["iaff"]["params"] == 9152
    # SE: two 1×1 convs on a 1×1 map, 64*8 + 8*64 multiply-accumulates
    assert by_name["se"]["macs"] == 1024


def test_list_at_the_default_shape_builds_every_module_and_names_each_dataset_option(capsys):
    # BoTNet's attention is built for the input (it refused 56×56 with its 16×16 position tables).
    assert main(["list", "--no-models", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [1, 256, 56, 56]
    assert [r["name"] for r in info["conv"]] == attnzoo.list_conv()
    datasets = {r["name"]: r for r in info["datasets"]}
    assert datasets["imagefolder"]["options"] == {"image_size": 64, "allow_empty_classes": False}
    assert datasets["digits"]["options"] == {} and datasets["digits"]["has_boxes"] and datasets["digits"]["input_size"] == [24, 24]


def test_list_table(capsys):
    assert main(["list", "--channels", "32", "--size", "4", "--no-models"]) == 0
    out = capsys.readouterr().out
    assert "Attention modules at input 1x32x4x4" in out and "cbam_spatial" in out and "iaff" in out


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2


@pytest.mark.parametrize("argv, message", [
    (["bench", "modules", "se", "--rounds", "0"], "attnzoo bench: error: argument --rounds: expected an integer ≥ 1, got '0' (see attnzoo bench --help)"),
    (["train", "--attn", "se", "--attn-opt", "reduction=abc"], "attnzoo train: error: attn 'se': option reduction='abc' must be a number (default 16)"),
    (["train", "--attn", "se", "--attn-opt", "foo=1"], "attnzoo train: error: attn 'se': unknown option foo; valid options: reduction, min_hidden, bias"),
    (["train", "--model-opt", "foo=1"], "attnzoo train: error: model 'cifar_resnet8': unknown option foo; valid options: widths, in_chans"),
    (["train", "--model-opt", "zero_init_residual=maybe"], "attnzoo train: error: model 'cifar_resnet8': option zero_init_residual='maybe' must be true or false (default False)"),
    (["compare", "--variants", "cbam:foo=1"], "attnzoo compare: error: attn 'cbam': unknown option foo; valid options: reduction"),
    (["train", "--epochs", "-1"], "attnzoo train: error: argument --epochs: expected an integer ≥ 1, got '-1'"),
    # Values that passed and then crashed or trained silently at b83c25c (issue 25, item 10).
    (["train", "--lr", "inf"], "attnzoo train: error: argument --lr: expected a number > 0, got 'inf'"),
    (["train", "--momentum", "nan"], "attnzoo train: error: argument --momentum: expected a number in [0, 1), got 'nan'"),
    (["train", "--weight-decay", "-1"], "attnzoo train: error: argument --weight-decay: expected a number ≥ 0, got '-1'"),
    (["train", "--warmup-epochs", "-1"], "attnzoo train: error: argument --warmup-epochs: expected a number ≥ 0, got '-1'"),
    (["train", "--seed", "-2"], "attnzoo train: error: argument --seed: expected an integer ≥ 0, got '-2'"),
    (["compare", "--first-seed", "-2"], "attnzoo compare: error: argument --first-seed: expected an integer ≥ 0, got '-2'"),
    (["train", "--attn", "se", "--attn-opt", "reduction=1e-9"], "attnzoo train: error: SqueezeExcite: reduction=1e-09: expected a number ≥ 1"),
    (["compare", "--variants", "triplet:kernel_size=4"], "attnzoo compare: error: TripletAttention: kernel_size=4: expected an odd integer ≥ 1"),
    (["train", "--conv", "splat", "--model", "resnet50", "--conv-opt", "radix=0"], "attnzoo train: error: SplitAttentionConv: radix=0: expected an integer ≥ 1"),
])
def test_user_errors_are_one_line_with_exit_code_2(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main([*argv, *(["--out", str(tmp_path)] if argv[0] in ("train", "compare") else [])])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith(message), err


@pytest.mark.parametrize("argv", [["viz", "--sample", "chelsea"], ["bench", "modules", "se"], ["compare", "--quick"], ["train", "--epochs", "1"]])
def test_unwritable_output_is_refused_before_any_work(argv, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(blocker / "out")])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith(f"attnzoo {argv[0]}: error: cannot write to {blocker / 'out'}")


@pytest.mark.parametrize("argv", [["preview-data"], ["eval", "CHECKPOINT"], ["export", "--model", "cifar_resnet8"]])
@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_a_file_output_under_a_file_or_at_a_folder_is_one_line(argv, where, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out, reason = (blocker / "out.x", f"{blocker} is a file, not a folder") if where == "under a file" else (tmp_path, "it is a folder; expected a file name")
    argv = [str(tmp_path / "missing.safetensors") if a == "CHECKPOINT" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(out)])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"attnzoo {argv[0]}: error: cannot write to {out if where == 'a folder' else blocker}: {reason}\n"


@pytest.mark.parametrize("command", ["train", "compare"])
def test_help_shows_every_numeric_default(command, capsys):
    # 0, 0.0 and 1.0 compare equal to False/True: they were once left out of the help.
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--warmup-epochs", TrainConfig().optim.warmup_epochs), ("--label-smoothing", 0.0), ("--freeze-stages", 0),
                          ("--epochs", 8)):
        assert f"{flag} {flag.lstrip('-').upper().replace('-', '_')}" in text
        assert re.search(re.escape(flag) + r" \S+ [^()]*\(default " + re.escape(str(default)) + r"\)", text), (flag, default)


@pytest.mark.parametrize("argv, message", [
    (["train", "--device", "bogus"], "attnzoo train: error: --device 'bogus' is not a device; expected auto, cpu, cuda, cuda:N or mps"),
    (["bench", "modules", "se", "--device", "nowhere"], "attnzoo bench: error: --device 'nowhere' is not a device"),
])
def test_a_bad_device_is_one_line(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(message), err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message of a build without CUDA")
def test_cuda_on_a_cpu_build_says_so(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["train", "--device", "cuda", "--out", str(tmp_path)])
    assert e.value.code == 2 and "--device cuda: " in capsys.readouterr().err


@pytest.mark.parametrize("content, name", [(b"", "empty.safetensors"), (b"garbage", "junk.safetensors"), (b"", "empty.pth")])
def test_an_unreadable_init_from_file_is_one_line_naming_it(content, name, capsys, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        main(["train", "--init-from", str(path), "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(f"attnzoo train: error: {path}: "), err
