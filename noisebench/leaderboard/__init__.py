"""Aggregate run records and render the leaderboard (DESIGN.md §6).

`aggregate` turns records into tables of cells, `cost` sums the compute behind them,
`markdown` renders the page, and `plots` draws the figures the page links to.
"""

from __future__ import annotations

from noisebench.leaderboard.aggregate import (
    LEADERBOARD_PHASES,
    TUNED,
    Board,
    Cell,
    Line,
    Stat,
    boards,
    dedupe,
    leaderboard_rows,
    noise_detail,
    split_stale,
    summarize,
)
from noisebench.leaderboard.markdown import (
    Page,
    build,
    describe_setup,
    github_anchor,
    heading_anchors,
    md_escape,
    page,
    render_markdown,
    render_table,
    stale_figures,
)

__all__ = [
    "LEADERBOARD_PHASES",
    "TUNED",
    "Board",
    "Cell",
    "Line",
    "Page",
    "Stat",
    "boards",
    "build",
    "dedupe",
    "describe_setup",
    "github_anchor",
    "heading_anchors",
    "leaderboard_rows",
    "md_escape",
    "noise_detail",
    "page",
    "render_markdown",
    "render_table",
    "split_stale",
    "stale_figures",
    "summarize",
]
