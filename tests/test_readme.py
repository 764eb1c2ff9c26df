"""The README's result tables are generated from the committed results (scripts/update_readme.py)."""

from pathlib import Path

from attnzoo.experiments.report import README_BLOCK, render_readme

REPO = Path(__file__).resolve().parents[1]


def test_readme_tables_match_the_committed_results():
    text = (REPO / "README.md").read_text()
    blocks = [m["name"] for m in README_BLOCK.finditer(text)]
    assert "compare-cpu" in blocks  # the main job's table is one of them
    for name in blocks:
        assert (REPO / "docs" / "results" / name / "results.json").is_file(), name
    assert render_readme(text, REPO / "docs" / "results") == text, "README out of date: run python scripts/update_readme.py"


def test_readme_module_tables_list_every_module_with_its_parameters_at_256():
    import re

    import attnzoo

    text = (REPO / "README.md").read_text()
    listed = {m["name"]: int(m["params"].replace(",", "")) for m in re.finditer(r"^\| `(?P<name>\w+)` \|.*\| (?P<params>[\d,]+)(?: \(θ⁻\))? \|$", text, re.M)}
    for name in attnzoo.list_attn() + attnzoo.list_fusion() + attnzoo.list_conv():
        assert name in listed, f"README's module tables lack {name}"
        assert listed[name] == attnzoo.count_params(attnzoo.layers.create_module(name, 256)), name
