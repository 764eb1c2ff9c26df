import json

import pytest

import attnzoo
from attnzoo.cli import main


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


def test_list_table(capsys):
    assert main(["list", "--channels", "32", "--size", "4", "--no-models"]) == 0
    out = capsys.readouterr().out
    assert "Attention modules at input 1x32x4x4" in out and "cbam_spatial" in out and "iaff" in out


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit) as e:
        main(["fly"])
    assert e.value.code == 2
