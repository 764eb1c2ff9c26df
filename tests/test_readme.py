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
