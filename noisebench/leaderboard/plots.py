"""The leaderboard's figures, as pure functions of plain data, written atomically as
deterministic PNGs.

Every `figure_*` function takes the dataclasses below (never records or boards), so
each figure is tested alone; `save` writes any of them. Matplotlib is imported inside
the functions, so importing this module stays cheap."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

LINESTYLES = {"solid": "-", "dashed": "--", "dotted": ":"}
_MARKERS = {"solid": "o", "dashed": "s", "dotted": "^"}
# tab20, dark shades first and greys left out: the first nine labels get clearly
# distinct colours, and grey stays free for the reference lines
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip
_REFERENCE_GREYS = ("0.35", "0.6", "0.45", "0.7")
_ANNOTATE_MAX_CLASSES = 12  # beyond this the numbers in the cells are unreadable
_MAX_COLUMNS = 4


@dataclass(frozen=True)
class Series:
    """One line: a method's metric against noise rate. `std` is the sample std over
    seeds, NaN where there is one seed; a NaN mean is a gap (a missing cell)."""

    label: str
    group: str  # the panel family it belongs to ("smoothing", "loss correction")
    x: tuple[float, ...]  # noise rates, ascending
    mean: tuple[float, ...]  # already scaled (accuracy in %)
    std: tuple[float, ...]
    style: str = "solid"  # "solid" | "dashed" | "dotted": variants of one method

    def __post_init__(self) -> None:
        for name in ("x", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if not len(self.x) == len(self.mean) == len(self.std):
            raise ValueError(
                f"series {self.label!r}: x, mean and std differ in length "
                f"({len(self.x)}, {len(self.mean)}, {len(self.std)})"
            )
        if self.style not in LINESTYLES:
            raise ValueError(
                f"series {self.label!r}: style {self.style!r} is not one of "
                f"{sorted(LINESTYLES)}"
            )


@dataclass(frozen=True)
class Reliability:
    """One reliability diagram, seeds pooled: sums per equal-width confidence bin
    (lo, hi] on [0, 1], as `metrics.reliability` returns them."""

    label: str
    count: tuple[int, ...]  # samples per bin
    correct: tuple[int, ...]  # correct predictions per bin
    confidence: tuple[float, ...]  # sum of max-probabilities per bin

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", tuple(int(v) for v in self.count))
        object.__setattr__(self, "correct", tuple(int(v) for v in self.correct))
        object.__setattr__(self, "confidence", tuple(float(v) for v in self.confidence))
        if not len(self.count) == len(self.correct) == len(self.confidence):
            raise ValueError(
                f"reliability {self.label!r}: count, correct and confidence differ "
                "in length"
            )
        if not self.count:
            raise ValueError(f"reliability {self.label!r}: no bins")

    @property
    def ece(self) -> float:
        """Expected calibration error as a fraction (NaN with no samples); the same
        formula as `metrics.ece_of_bins`, which this module does not import (torch)."""
        total = sum(self.count)
        gap = sum(abs(h - c) for h, c in zip(self.correct, self.confidence))
        return gap / total if total else math.nan


@dataclass(frozen=True)
class Curves:
    """Memorization curves of one method at one noise setting, per epoch and mean over
    seeds: the fraction of corrupted training samples predicted as their noisy label,
    and as their clean label."""

    label: str
    fit_noisy: tuple[float, ...]
    fit_clean: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fit_noisy", tuple(float(v) for v in self.fit_noisy))
        object.__setattr__(self, "fit_clean", tuple(float(v) for v in self.fit_clean))
        if len(self.fit_noisy) != len(self.fit_clean):
            raise ValueError(
                f"curves {self.label!r}: fit_noisy and fit_clean differ in length"
            )


def colours_for(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label, assigned in sorted order (case-insensitive): the same set of
    labels always gets the same colours, whatever order or panels they come in. Compute
    it once over every label of the leaderboard and pass it as `colours=` to keep a
    method's colour across figures whose label sets differ. Past 18 labels colours
    repeat."""
    return {
        label: PALETTE[i % len(PALETTE)]
        for i, label in enumerate(sorted(set(labels), key=lambda t: (t.casefold(), t)))
    }


def figure_small_multiples(
    series: Sequence[Series],
    *,
    title: str,
    ylabel: str,
    reference: Sequence[Series] = (),
    max_lines: int = 6,
    xlabel: str = "noise rate",
    colours: Mapping[str, str] | None = None,
) -> Figure:
    """One panel per group (in order of first appearance), each line a series with a
    ±std band; `reference` series (the baseline) are drawn grey and dashed in every
    panel, so each method is read against it. A group with more lines than `max_lines`
    (the reference lines count) is split evenly over panels "group (1/2)", "(2/2)", in
    the order given: put a method's variants next to each other to keep them together.

    Artists carry a gid, which tests and callers can rely on: "series" and "reference"
    for the lines, "band" for the ±std band, each labelled with the series' label."""
    if not series:
        raise ValueError("figure_small_multiples: no series")
    capacity = max_lines - len(reference)
    if capacity < 1:
        raise ValueError(
            f"max_lines={max_lines} leaves no room beside {len(reference)} reference "
            "line(s)"
        )
    groups: dict[str, list[Series]] = {}
    for s in series:
        members = groups.setdefault(s.group, [])
        if any(m.label == s.label for m in members):
            raise ValueError(f"series {s.label!r} appears twice in group {s.group!r}")
        members.append(s)
    palette = {**colours_for([s.label for s in series]), **(colours or {})}

    panels: list[tuple[str, list[Series]]] = []
    for group, members in groups.items():
        parts = _split(members, capacity)
        for i, part in enumerate(parts, 1):
            name = (
                _plain(group)
                if len(parts) == 1
                else f"{_plain(group)} ({i}/{len(parts)})"
            )
            panels.append((name, part))

    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), panel=(3.8, 3.0), sharey=True)
    for ax, (name, members) in zip(axes, panels, strict=True):
        handles = []
        # the baseline first, underneath: the methods are what the panel is about
        for i, ref in enumerate(reference):
            (line,) = ax.plot(
                ref.x,
                ref.mean,
                color=_REFERENCE_GREYS[i % len(_REFERENCE_GREYS)],
                linestyle="--",
                linewidth=1.0,
                label=_plain(ref.label),
                gid="reference",
                zorder=1.5,
            )
            handles.append(line)
        for s in members:
            colour = palette[s.label]
            line = _band_line(ax, s, colour)
            handles.insert(len(handles) - len(reference), line)
        ax.set_title(name, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize="small", framealpha=0.85, loc="best")
    fig.supxlabel(_plain(xlabel))
    fig.supylabel(_fit(_plain(ylabel), fig.get_figheight()))
    fig.suptitle(_plain(title))
    return fig


def figure_reliability(diagrams: Sequence[Reliability], *, title: str) -> Figure:
    """One panel per diagram: accuracy per non-empty bin as bars at the bin centres,
    the gap to the bin's mean confidence as a hatched red bar on top of it (Guo et al.
    2017), the diagonal of perfect calibration, and the ECE in the panel's title.

    Gids: "accuracy" and "gap" on the bars' rectangles, "diagonal" on the line."""
    if not diagrams:
        raise ValueError("figure_reliability: no diagrams")
    plt = _pyplot()
    fig, axes = _grid(plt, len(diagrams), panel=(2.9, 3.3), sharey=True)
    for ax, d in zip(axes, diagrams, strict=True):
        n_bins = len(d.count)
        count = np.asarray(d.count, dtype=float)
        full = count > 0  # an empty bin has no accuracy: it is drawn as nothing
        centres = (np.arange(n_bins) + 0.5) / n_bins
        accuracy = np.asarray(d.correct, dtype=float)[full] / count[full]
        confidence = np.asarray(d.confidence, dtype=float)[full] / count[full]
        width = 1.0 / n_bins
        ax.plot(
            [0, 1], [0, 1], color="0.4", linestyle=":", linewidth=1.0, gid="diagonal"
        )
        ax.bar(
            centres[full],
            accuracy,
            width=width,
            color="#1f77b4",
            edgecolor="#0b3c61",
            linewidth=0.5,
            label="accuracy",
            gid="accuracy",
        )
        ax.bar(
            centres[full],
            confidence - accuracy,
            bottom=accuracy,
            width=width,
            color="#d62728",
            alpha=0.3,
            edgecolor="#d62728",
            hatch="//",
            linewidth=0.5,
            label="gap to confidence",
            gid="gap",
        )
        ece = d.ece
        total = int(count.sum())
        score = "ECE n/a" if math.isnan(ece) else f"ECE {100 * ece:.2f}%"
        ax.set_title(f"{_plain(d.label)}\n{score} (n={total})", fontsize="medium")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small", loc="upper left")
    fig.supxlabel("confidence (max probability)")
    fig.supylabel("accuracy")
    fig.suptitle(_plain(title))
    return fig


def figure_transitions(
    matrices: Sequence[tuple[str, np.ndarray]],
    *,
    title: str,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """One heat map per (label, counts) pair, counts[i, j] = #{clean = i, noisy = j}:
    the realized transition matrix T[i, j] = P(noisy = j | clean = i), on one fixed
    0..1 colour scale with one shared colour bar. A row without samples is NaN (blank),
    never a division by zero."""
    if not matrices:
        raise ValueError("figure_transitions: no matrices")
    normalized = []
    for label, counts in matrices:
        counts = np.asarray(counts, dtype=float)
        if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
            raise ValueError(f"matrix {label!r}: not square, shape {counts.shape}")
        if class_names is not None and len(class_names) != counts.shape[0]:
            raise ValueError(
                f"matrix {label!r}: {counts.shape[0]} classes, "
                f"{len(class_names)} class names"
            )
        normalized.append((label, counts, row_normalize(counts)))

    plt = _pyplot()
    k_max = max(c.shape[0] for _, c, _ in normalized)
    side = min(max(2.8, 0.38 * k_max), 6.0)
    fig, axes = _grid(plt, len(normalized), panel=(side + 0.4, side + 0.5))
    cmap = plt.get_cmap("Blues").with_extremes(bad="white")
    image = None
    for ax, (label, counts, t) in zip(axes, normalized, strict=True):
        k = t.shape[0]
        image = ax.imshow(t, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        if k <= _ANNOTATE_MAX_CLASSES:
            size = "small" if k <= 6 else ("x-small" if k <= 10 else "xx-small")
            for i, j in np.ndindex(t.shape):
                if math.isnan(t[i, j]):
                    continue
                text = "0" if counts[i, j] == 0 else f"{t[i, j]:.2f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if t[i, j] > 0.5 else "black",
                )
        # past 20 classes every tick label would overlap: label every step-th one
        ticks = np.arange(k)[:: math.ceil(k / 20)]
        names = [
            _plain(str(i if class_names is None else class_names[i])) for i in ticks
        ]
        ax.set_xticks(ticks, names, rotation=0 if class_names is None else 90)
        ax.set_yticks(ticks, names)
        ax.set_xlabel("noisy label")
        ax.set_ylabel("clean label")
        total = counts.sum()
        rate = (
            "" if total == 0 else f"\nrealized noise {1 - np.trace(counts) / total:.3f}"
        )
        ax.set_title(_plain(label) + rate, fontsize="medium")
    fig.colorbar(image, ax=axes, shrink=0.8, label="P(noisy label | clean label)")
    fig.suptitle(_plain(title))
    return fig


def figure_memorization(
    curves: Sequence[Curves],
    *,
    title: str,
    max_lines: int = 6,
    colours: Mapping[str, str] | None = None,
    order: str | None = None,
) -> Figure:
    """Per method, the fraction of corrupted training samples the model predicts as
    their noisy label (solid) and as their clean label (dashed), in one colour, against
    the epoch (1-based); split evenly over panels of at most `max_lines` lines. With
    several panels, each is titled by the positions of its curves, and by `order` when
    the curves come in an order the reader knows (a table's).

    Gids: "fit_noisy" and "fit_clean" on the lines, each labelled with the method."""
    if not curves:
        raise ValueError("figure_memorization: no curves")
    if max_lines < 2:
        raise ValueError(f"max_lines={max_lines}: a method needs two lines")
    labels = [c.label for c in curves]
    if len(set(labels)) != len(labels):
        raise ValueError("figure_memorization: a label appears twice")
    palette = {**colours_for(labels), **(colours or {})}
    parts = _split(list(curves), max_lines // 2)

    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, axes = _grid(plt, len(parts), panel=(3.8, 4.2), sharey=True)
    for n, (ax, part) in enumerate(zip(axes, parts, strict=True), 1):
        handles = []
        for c in part:
            colour = palette[c.label]
            epochs = np.arange(1, len(c.fit_noisy) + 1)
            (noisy,) = ax.plot(
                epochs,
                c.fit_noisy,
                color=colour,
                linestyle="-",
                label=_plain(c.label),
                gid="fit_noisy",
            )
            ax.plot(
                epochs,
                c.fit_clean,
                color=colour,
                linestyle="--",
                label=_plain(c.label),
                gid="fit_clean",
            )
            handles.append(noisy)
        # the style key is drawn only in the legend, so it adds no line to the axes
        handles += [
            Line2D(
                [], [], color="0.3", linestyle="-", label="predicts the noisy label"
            ),
            Line2D(
                [], [], color="0.3", linestyle="--", label="predicts the clean label"
            ),
        ]
        # below the panel: these curves span the whole axes, so any legend inside
        # hides some of them
        ax.legend(
            handles=handles,
            fontsize="small",
            frameon=False,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.16),
        )
        if len(parts) > 1:
            first = sum(len(p) for p in parts[: n - 1]) + 1
            span = f"{first}–{first + len(part) - 1}" if len(part) > 1 else f"{first}"
            where = f", in the {order}'s order" if order else ""
            ax.set_title(f"{span} of {len(curves)}{where}", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    fig.supylabel("fraction of corrupted training samples")
    fig.suptitle(_plain(title))
    return fig


@dataclass(frozen=True)
class Precision:
    """Of the samples a selecting method (Co-teaching) trained on in each epoch, the
    fraction whose noisy label is clean; mean over seeds."""

    label: str
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))


def figure_label_precision(
    panels: Sequence[tuple[str, float, Sequence[Precision]]], *, title: str
) -> Figure:
    """One panel per (title, baseline, curves): each method's label precision against
    the epoch (1-based), and as a grey dotted line the baseline, the precision of
    training on every sample (1 - the realized flip rate): the Co-teaching paper's
    label-precision plot.

    Gids: "precision" on the curves, "baseline" on the reference line."""
    if not panels:
        raise ValueError("figure_label_precision: no panels")
    labels = sorted({c.label for _, _, curves in panels for c in curves})
    palette = colours_for(labels)
    plt = _pyplot()
    fig, axes = _grid(plt, len(panels), panel=(3.8, 3.0), sharey=True)
    for ax, (name, baseline, curves) in zip(axes, panels, strict=True):
        longest = max((len(c.values) for c in curves), default=1)
        for c in curves:
            epochs = np.arange(1, len(c.values) + 1)
            ax.plot(
                epochs,
                c.values,
                color=palette[c.label],
                label=_plain(c.label),
                gid="precision",
            )
        ax.plot(
            [1, longest],
            [baseline, baseline],
            color=_REFERENCE_GREYS[0],
            linestyle=":",
            label="every sample",
            gid="baseline",
        )
        ax.set_title(_plain(name), fontsize="medium")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", framealpha=0.85, loc="lower right")
    fig.supxlabel("epoch")
    fig.supylabel("clean labels among the samples trained on")
    fig.suptitle(_plain(title))
    return fig


def figure_scatter(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    title: str,
    class_names: Mapping[int, str] | None = None,
) -> Figure:
    """One scatter panel per (title, points (N, 2), labels (N,)), a colour per label
    (the same in every panel), equal axes: the projections of Müller et al. 2019's
    Figure 1, one panel per model and split."""
    plt = _pyplot()
    if not panels:
        raise ValueError("figure_scatter needs at least one panel")
    labels = sorted({int(v) for _, _, y in panels for v in np.asarray(y)})
    colours = colours_for([str(v) for v in labels])
    fig, axes = _grid(plt, len(panels), panel=(3.6, 3.4))
    for ax, (name, points, y) in zip(axes, panels, strict=True):
        points, y = np.asarray(points), np.asarray(y)
        for label in labels:
            mine = points[y == label]
            name_of = (class_names or {}).get(label, f"class {label}")
            ax.scatter(
                mine[:, 0],
                mine[:, 1],
                s=6,
                alpha=0.6,
                color=colours[str(label)],
                label=_plain(name_of),
                gid="points",
            )
        ax.set_title(_plain(name), fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, markerscale=2)
    fig.suptitle(_plain(title))
    return fig


def save(fig: Figure, path: Path, *, key: str | None = None) -> None:
    """Write `fig` as a PNG at `path`, atomically (a kill mid-save must not leave half
    a PNG that is read) and deterministically (no version stamp, so an unchanged figure
    gives the same bytes and no diff); the figure is closed in any case. `key`, a
    digest of what was drawn, goes into the PNG's text so that `saved_key` can tell
    an unchanged figure without drawing it again."""
    from noisebench.store import temporary_path

    plt = _pyplot()
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:
            f.write(_palette_png(fig, key))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        plt.close(fig)


_KEY = "noisebench-drawn-from"


def saved_key(path: Path) -> str | None:
    """The key `save` wrote into the PNG at `path`; None for a missing or unreadable
    file, or one saved without a key."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return getattr(image, "text", {}).get(_KEY)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None


def _palette_png(fig: Figure, key: str | None = None) -> bytes:
    """The figure as a 256-colour PNG: a third to a quarter of matplotlib's RGBA bytes,
    with no visible change to lines, text or heat maps; the committed board's plots
    are git history, so every byte stays in the repository for good."""
    import io

    from PIL import Image, PngImagePlugin

    rendered = io.BytesIO()
    fig.savefig(rendered, format="png", dpi=100, metadata={"Software": None})
    image = Image.open(rendered).convert("RGB")
    palette = image.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    info = PngImagePlugin.PngInfo()
    if key is not None:
        info.add_text(_KEY, key)
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True, pnginfo=info)
    return out.getvalue()


def row_normalize(counts: np.ndarray) -> np.ndarray:
    """counts / row sums, NaN for a row without samples."""
    counts = np.asarray(counts, dtype=float)
    sums = counts.sum(axis=1, keepdims=True)
    out = np.full(counts.shape, np.nan)
    np.divide(counts, sums, out=out, where=sums > 0)
    return out


def _band_line(ax: Axes, s: Series, colour: str) -> Any:
    """The mean line with markers over its ±std band; NaN means leave gaps, and points
    with a NaN std (one seed) get no band."""
    mean, std = np.asarray(s.mean), np.asarray(s.std)
    if np.isfinite(mean + std).any():
        ax.fill_between(
            s.x,
            mean - std,
            mean + std,
            color=colour,
            alpha=0.2,
            linewidth=0,
            label=_plain(s.label),
            gid="band",
        )
    (line,) = ax.plot(
        s.x,
        mean,
        color=colour,
        linestyle=LINESTYLES[s.style],
        marker=_MARKERS[s.style],
        markersize=4,
        label=_plain(s.label),
        gid="series",
    )
    return line


def _split(items: list, size: int) -> list[list]:
    """`items` in consecutive parts of at most `size`, as even as possible: 7 by 5 is
    4 + 3, not 5 + 2, so no panel is left nearly empty."""
    parts = math.ceil(len(items) / size)
    base, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + base + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def _grid(
    plt: Any, n: int, *, panel: tuple[float, float], sharey: bool = False
) -> tuple[Figure, list[Axes]]:
    """`n` panels in rows of at most four, the figure sized by the panel count; the
    unused cells of the last row are removed, so `fig.axes` holds only the panels."""
    cols = min(n, _MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(
        rows,
        cols,
        figsize=(panel[0] * cols + 0.6, panel[1] * rows + 0.8),
        sharey=sharey,
        squeeze=False,
        layout="constrained",
    )
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fit(text: str, inches: float) -> str:
    """`text` broken into lines that fit along `inches` of figure (about 9 pixels a
    character at the default size and 100 dpi): a one-row figure is too short for a
    long y label, which constrained layout would clip at both ends."""
    import textwrap

    return textwrap.fill(text, width=max(16, int(inches * 100 / 9)))


def _plain(text: str) -> str:
    """User text for matplotlib: a pair of '$' would be parsed as (maybe invalid) math."""
    return text.replace("$", r"\$")
