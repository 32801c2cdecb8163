"""The leaderboard's plots, written atomically as deterministic PNGs."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from noisebench.leaderboard.aggregate import TUNED, Board, Line


def plot_board(board: Board, path: Path) -> None:
    """Accuracy against noise rate, one line per method, for both selection rules."""
    import matplotlib

    from noisebench.store import temporary_path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # one colour per method; the line style tells its variants apart (set params,
    # tuned, estimated T), so a dozen rows stay readable
    methods = sorted({key.method for key in board.cells})
    colours = plt.get_cmap("tab10")

    def style(key: Line) -> dict[str, Any]:
        dashed, marker = ("--", "s") if key.params == TUNED else ("-", "o")
        if key.estimated_t:
            dashed, marker = ":", "^"
        return {
            "color": colours(methods.index(key.method) % 10),
            "linestyle": dashed,
            "marker": marker,
        }

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, metric, title in zip(
        axes,
        ("test_acc", "test_acc_at_best_val"),
        ("last epoch", "selected by noisy validation"),
        strict=True,
    ):
        for key in sorted(board.cells):
            line = board.cells[key]
            rates = [r for r in sorted(line) if line[r].complete]
            if not rates:
                continue
            stats = [line[r].stat(metric) for r in rates]
            ax.errorbar(
                rates,
                [100 * s.mean for s in stats],
                yerr=[0 if math.isnan(s.std) else 100 * s.std for s in stats],
                capsize=3,
                label=_plain(key.label),
                **style(key),
            )
        ax.set_title(title)
        ax.set_xlabel("noise rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("clean test accuracy (%)")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(_plain(f"{board.dataset}: {board.noise_type} noise"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)  # a kill mid-save must not leave half a PNG
    try:
        with open(tmp, "xb") as f:
            fig.savefig(f, format="png", dpi=100, metadata={"Software": None})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


def _plain(text: str) -> str:
    """User text for matplotlib: a pair of '$' would be parsed as (maybe invalid) math."""
    return text.replace("$", r"\$")
