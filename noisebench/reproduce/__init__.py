"""`noisebench reproduce`: the seed papers' claims as runnable experiments (DESIGN.md
§1). A preset declares its arms and its verdict rule (`core`); its runs go through the
normal engine and store (`runs.evaluate`, so a rerun reuses what is recorded); the
report says what was run, what came out, and whether the claim holds here (`report`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from noisebench.errors import UserError
from noisebench.registry import Registry
from noisebench.reproduce.core import Arm, Preset, Records, Setting, Verdict, judge
from noisebench.reproduce.presets import PRESETS as _BUILTIN

# preset names read as the claims' authors and topics: muller-calibration
PRESETS: Registry[Preset] = Registry("preset", pattern=re.compile(r"^[a-z][a-z0-9-]*$"))
for _preset in _BUILTIN:
    PRESETS.register(_preset.name, _preset, origin=__name__)


def get_preset(name: str) -> Preset:
    return PRESETS.get(name)


def list_presets() -> list[str]:
    return PRESETS.names()


@dataclass(frozen=True)
class Result:
    preset: Preset
    setting: Setting
    arms: list[Arm]
    records: Records
    verdict: Verdict


class MissingRuns(UserError):
    """An arm whose runs are not in the store, where nothing may train."""


def reproduce(
    name: str,
    setting: Setting,
    store: Path,
    *,
    on_arm=None,
    any_commit: bool = False,
    stored_only: bool = False,
) -> Result:
    """Run every arm of preset `name` on `setting` (each validated before any trains),
    reusing the records already in `store` (made by this commit, or by any with
    `any_commit`), and judge the claim. With `stored_only`, judge the runs that any
    commit of this engine revision stored, train nothing and write nothing, and raise
    MissingRuns for an arm the store lacks (a preset that measures the models cannot
    be judged so: its values are not stored)."""
    from noisebench.experiment import prepare
    from noisebench.runs import evaluate
    from noisebench.tune import tune, tuning_run

    preset = get_preset(name)
    arms = preset.arms(setting)
    # every input check, first: nothing trains for a request that fails later
    prepared = [
        tuning_run(tune_spec(arm, store)) if arm.trials else prepare(arm.spec)
        for arm in arms
    ]
    records: Records = {}
    for i, (arm, ready) in enumerate(zip(arms, prepared, strict=True)):
        if on_arm is not None:
            on_arm(i, len(arms), arm)
        if stored_only:
            if preset.probe is not None:
                raise ValueError(f"{name} measures the trained models: it must train")
            records[arm.label] = _stored(arm, ready, store)
        elif arm.trials:
            records[arm.label] = tune(tune_spec(arm, store), store=store).final
        elif preset.probe is not None:
            records[arm.label] = _probed(preset, ready, store)
        else:
            records[arm.label] = evaluate(ready, store, any_commit=any_commit).records
    return Result(preset, setting, arms, records, judge(records, preset.parts(records)))


def _stored(arm: Arm, prepared, store: Path) -> list[dict]:
    """The arm's records, one per seed, as a rerun with `--any-commit` would reuse
    them (a tuned arm's: its study's final runs), or MissingRuns."""
    from noisebench.records import stored_runs
    from noisebench.tune import final_records, study_name

    if arm.trials:
        spec = tune_spec(arm, store)
        study = spec.study or study_name(spec, prepared)
        found = final_records(store, study, spec.final_seed_range)
        if found is None:
            raise MissingRuns(
                f"arm '{arm.label}': the store lacks the final runs of study '{study}'"
            )
        return found
    done = stored_runs(prepared, store, any_commit=True)
    missing = [seed for seed in prepared.spec.seeds if seed not in done]
    if missing:
        seeds = ", ".join(map(str, missing))
        raise MissingRuns(
            f"arm '{arm.label}': the store lacks the runs of seeds {seeds}"
        )
    return [done[seed] for seed in prepared.spec.seeds]


def _probed(preset: Preset, prepared, store: Path) -> list[dict]:
    """Train the arm (its records are written as any run's), and return its records
    with the probe's values of each seed merged in (those are not stored)."""
    from noisebench.experiment import run
    from noisebench.runs import evaluate

    measured: list[dict] = []

    def probe(ready, result) -> None:
        measured.extend(preset.probe(ready, result))

    outcome = evaluate(prepared, store, rerun=True, train=lambda p: run(p, probe=probe))
    return [r | m for r, m in zip(outcome.records, measured, strict=True)]


def tune_spec(arm: Arm, store: Path):
    """The tuning request of a tuned arm: its method's params free, the same budget
    for every tuned arm of a preset, the final runs on the arm's seeds."""
    from dataclasses import replace

    from noisebench.tune import TuneSpec

    return TuneSpec(
        base=replace(arm.spec, params={}),
        trials=arm.trials,
        tune_seeds=2,
        final_seeds=len(arm.spec.seeds),
        first_seed=arm.spec.seeds[0],
    )
