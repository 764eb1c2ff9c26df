"""Figure layout: no title drawn over another or over a panel, no padding of empty panels."""

from __future__ import annotations

import itertools

import pytest

from attnzoo.cli import main
from attnzoo.viz import figures


@pytest.fixture
def drawn(monkeypatch):
    """Every figure viz saves, kept open and drawn, with its text boxes in display units."""
    kept = []

    def keep(fig, path, dpi=100):
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(figures, "save_figure", keep)
    return kept


def text_boxes(fig):
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] + [ax.title for ax in fig.axes]
    return [t.get_window_extent(renderer) for t in texts if t is not None and t.get_text()]


@pytest.mark.parametrize("attn", ["cbam", "se"])
def test_titles_overlap_nothing(drawn, tmp_path, attn):
    assert main(["viz", "--model", "resnet18", "--attn", attn, "--sample", "chelsea", "--out", str(tmp_path)]) == 0
    assert drawn
    for fig in drawn:
        boxes = text_boxes(fig)
        overlapping = [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]
        assert not overlapping, f"{fig._suptitle.get_text()!r}: {len(overlapping)} overlapping titles"
        renderer = fig.canvas.get_renderer()
        panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_images() or ax.patches]
        for title in boxes:
            assert not any(title.overlaps(p) for p in panels), "a title drawn over a panel"


def test_a_short_row_is_not_padded_with_empty_panels():
    fig, axes = figures._grid(3)
    assert len(fig.axes) == 3
    fig, axes = figures._grid(9)
    assert len(fig.axes) == 12 and sum(ax.axison for ax in fig.axes) == 9
