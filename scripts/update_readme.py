"""Regenerate the README's result tables from the committed docs/results/*/results.json.

    python scripts/update_readme.py          # rewrite README.md
    python scripts/update_readme.py --check  # exit 1 if README.md is out of date
"""

import sys
from pathlib import Path

from attnzoo.experiments.report import render_readme
from attnzoo.utils.io import atomic_write_text

repo = Path(__file__).resolve().parents[1]
readme = repo / "README.md"
text = readme.read_text()
new = render_readme(text, repo / "docs" / "results")
if "--check" in sys.argv:
    sys.exit(0 if new == text else 1)
atomic_write_text(readme, new)
