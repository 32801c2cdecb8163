"""A preset's report: `reports/NAME-DATASET.md` and its figure, written atomically.
Deterministic given the records, so a rerun that trains nothing rewrites nothing."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from noisebench.leaderboard.markdown import describe_setup, md_escape
from noisebench.reproduce import Result
from noisebench.reproduce.core import (
    ALPHA,
    BEATS,
    MATCHES,
    NO_WORSE,
    Setting,
    Verdict,
)

METRIC_NAMES = {
    "test_acc": "clean test accuracy, last epoch (%)",
    "test_acc_at_best_val": "clean test accuracy, noisy-validation epoch (%)",
    "ece": "ECE, last epoch (%)",
    "best_val_acc": "best noisy-validation accuracy (%)",
    "ece_scaled": "ECE after temperature scaling (%)",
    "temperature": "fitted temperature",
    "spread_ratio": "within / between-class spread in the template plane",
}
NOT_PERCENT = {"temperature", "spread_ratio"}


def report_name(result: Result) -> str:
    """NAME-DATASET, and the seeds of a replication, which must not overwrite the
    report it replicates."""
    setting = result.setting
    name = f"{result.preset.name}-{setting.dataset}"
    if setting.first_seed:
        name += f"-seeds{setting.seed_range[0]}-{setting.seed_range[-1]}"
    return name


# what each kind of part means, said in a report only when one of its parts is of it
TEST_WORDS = {
    BEATS: (
        "A directional part holds when the first arm is significantly better and fails"
        " when the second is."
    ),
    MATCHES: (
        "An equivalence part (±margin) holds when both one-sided tests reject a larger"
        " difference (TOST), and fails when the difference is significantly beyond the"
        " margin."
    ),
    NO_WORSE: (
        'A non-inferiority part ("less than the margin below, or above") holds when'
        " its 95% CI lies wholly above −margin (its p, one-sided, below α/2) and fails"
        " when it lies wholly below."
    ),
}


def rule_text(verdict: Verdict) -> str:
    kinds = dict.fromkeys(r.part.test for r in verdict.parts)
    base = (
        f"paired t-tests over the runs that share a noise seed, α = {ALPHA:g}. The"
        " claim holds when every part below holds, does not hold when any part does"
        " not, and is inconclusive otherwise."
    )
    return " ".join([base, *(TEST_WORDS[k] for k in kinds)])


def command(name: str, setting: Setting) -> str:
    """The command that writes this report from the runs in its store: the setting's
    options, the defaults among them spelled out so that the line alone says it."""
    words = ["noisebench reproduce", name, "--dataset", setting.dataset]
    words += ["--seeds", str(setting.seeds)]
    if setting.first_seed:
        words += ["--first-seed", str(setting.first_seed)]
    if setting.model is not None:
        words += ["--model", setting.model]
    if setting.epochs is not None:
        words += ["--epochs", str(setting.epochs)]
    return " ".join([*words, "--any-commit"])


def _stat(records, metric: str) -> str:
    values = [
        r[metric] for r in records if r["status"] == "ok" and r[metric] is not None
    ]
    if not values:
        return "—"
    # percentages to a tenth of a point; other quantities to 3 significant digits
    scale, form = (1, ".3g") if metric in NOT_PERCENT else (100, ".1f")
    mean = scale * statistics.fmean(values)
    spread = f" ± {scale * statistics.stdev(values):{form}}" if len(values) > 1 else ""
    bad = len(records) - len(values)
    return f"{mean:{form}}{spread} ({len(values)}" + (
        f", {bad} not ok)" if bad else ")"
    )


def render(result: Result, figure: str | None) -> str:
    preset, setting, verdict = result.preset, result.setting, result.verdict
    first = result.arms[0].spec
    out = [
        f"# {preset.name} on {md_escape(setting.dataset)}",
        "",
        f"**Claim.** {preset.claim}",
        "",
        f"**Paper.** {preset.paper}",
        "",
        f"**Verdict here: {verdict.outcome}**, with {setting.seeds} seeds"
        + (
            f" ({setting.seed_range[0]}–{setting.seed_range[-1]})."
            if setting.first_seed
            else "."
        ),
        "",
        "**Rule** (fixed in `noisebench/reproduce/presets.py` before any run): "
        + rule_text(verdict),
        *(["", f"**Rule amended.** {preset.amended}"] if preset.amended else []),
        "",
        "Each part's 95% confidence interval places the difference"
        + (
            "; for a directional part, *detectable* is the smallest true difference"
            " these seeds would find 80% of the time at the spread they show: a smaller"
            " effect can hide in an inconclusive part, and more seeds shrink it roughly"
            " as 1/√seeds."
            if any(r.part.test == BEATS for r in verdict.parts)
            else "."
        ),
        "",
        "| part | rule | mean difference | 95% CI | detectable | p | pairs | outcome |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in verdict.parts:
        metric = r.part.metric
        diff_text = (
            "—" if math.isnan(r.difference) else _difference(r.difference, metric)
        )
        low, high = r.interval
        ci = (
            "—"
            if math.isnan(low)
            else f"{_signed(low, metric)} to {_signed(high, metric)}"
        )
        detectable = "—" if math.isnan(r.detectable) else _size(r.detectable, metric)
        p_text = "—" if math.isnan(r.p_value) else f"{r.p_value:.3g}"
        out.append(
            f"| {md_escape(r.part.label or '—')} | {md_escape(r.part.rule())} "
            f"| {diff_text} | {ci} | {detectable} | {p_text} | {r.pairs} | {r.outcome} |"
        )
    metrics = list(dict.fromkeys([*preset.metrics, "best_val_acc"]))
    out += [
        "",
        (
            f"Setup: {md_escape(describe_setup(_identity(first)))}; dataset"
            f" {md_escape(setting.dataset)}. Cells: mean ± std over seeds (finished seeds)."
            f" Runs made on {made_on(result)}."
        ),
        "",
        "| arm | " + " | ".join(METRIC_NAMES.get(m, m) for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for arm in result.arms:
        records = result.records[arm.label]
        cells = " | ".join(_stat(records, m) for m in metrics)
        out.append(f"| {md_escape(arm.label)} | {cells} |")
    if preset.paper_figures:
        out += ["", f"**The paper's figures.** {preset.paper_figures}"]
    if figure:
        out += ["", f"![{preset.name}]({figure})"]
    how = f"`{command(preset.name, setting)}`"
    out += [
        "",
        (
            f"This page is what {how} writes; it trains the arms again, since it"
            " measures the trained models, so `noisebench reproduce --check` cannot"
            " check it without training."
            if preset.probe is not None
            else f"This page is what {how} writes from the arms' stored runs;"
            " `noisebench reproduce --check` says whether it still is."
        ),
    ]
    return "\n".join(out) + "\n"


def made_on(result: Result) -> str:
    """Which machines made the arms' runs, with counts: where runs of one report come
    from several (a shared arm retrained elsewhere), the reader sees it, since training
    noise differs between machines and kernels."""
    from collections import Counter

    devices = Counter(
        r.get("device_name") or r.get("device") or "unknown"
        for records in result.records.values()
        for r in records
    )
    return ", ".join(
        f"{md_escape(name)} ({count} runs)" for name, count in sorted(devices.items())
    )


def _difference(diff: float, metric: str) -> str:
    """A difference of fractions in points (of %), of anything else as it is."""
    return f"{diff:+.3f}" if metric in NOT_PERCENT else f"{100 * diff:+.2f} points"


def _signed(value: float, metric: str) -> str:
    return f"{value:+.3f}" if metric in NOT_PERCENT else f"{100 * value:+.2f}"


def _size(value: float, metric: str) -> str:
    return f"{value:.3f}" if metric in NOT_PERCENT else f"{100 * value:.2f} points"


def _identity(spec) -> str:
    from noisebench.records import canonical_json

    return canonical_json(spec.train.identity())


def figure_of(result: Result):
    """The report's figure as a Drawing (called, it draws it), or None when the preset
    has none: its own drawing, or a line plot of a metric against the preset's x, one
    line per group."""
    from functools import partial

    from noisebench.leaderboard.plots import Series, figure_small_multiples

    if result.preset.draw is not None:
        return partial(result.preset.draw, result)
    if result.preset.figure is None:
        return None
    xlabel, metric = result.preset.figure
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for arm in result.arms:
        values = [
            100 * r[metric]
            for r in result.records[arm.label]
            if r["status"] == "ok" and r[metric] is not None
        ]
        if arm.x is None or not values:
            continue
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        lines.setdefault(arm.line or arm.label, []).append(
            (arm.x, statistics.fmean(values), std)
        )
    series = [
        Series(name, result.preset.name, *zip(*sorted(points), strict=True))
        for name, points in lines.items()
    ]
    if not series:
        return None
    return partial(
        figure_small_multiples,
        series,
        title=f"{result.preset.name} on {result.setting.dataset}",
        ylabel=METRIC_NAMES.get(metric, metric),
        xlabel=xlabel,
        max_lines=max(6, len(series)),
    )


def write(result: Result, folder: Path) -> Path:
    """Write the report (and its figure) under `folder`; return the markdown's path.
    The figure carries a digest of what it draws, which `check` compares."""
    from noisebench.leaderboard.figures import drawing_key
    from noisebench.leaderboard.plots import save
    from noisebench.store import temporary_path

    folder.mkdir(parents=True, exist_ok=True)
    name = report_name(result)
    drawing = figure_of(result)
    if drawing is not None:
        save(drawing(), folder / f"{name}.png", key=drawing_key(drawing))
    path = folder / f"{name}.md"
    tmp = temporary_path(path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(render(result, f"{name}.png" if drawing is not None else None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
