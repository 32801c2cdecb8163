"""The leaderboard protocol over a suite: every method x noise type x rate, each cell
tuned with the same budget and then run on fresh seeds.

Cells are coordinated through Optuna's storage, not files: the first worker enqueues one
trial per cell in a sweep study, and every worker pops queued trials, which the storage
hands out once. A dead worker's cell is retried by the others (heartbeats). A cell whose
final records are already in the store costs nothing, so a sweep resumes where it
stopped, and a second run of a finished sweep does no work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from noisebench.errors import UserError
from noisebench.records import canonical_json

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class Cell:
    method: str
    noise_type: str
    rate: float
    transition: str = "oracle"  # or "estimated", for methods that use T

    def label(self) -> str:
        method = self.method
        if self.transition == "estimated":
            method += " [estimated T]"
        return f"{method} / {self.noise_type} {self.rate:g}"


@dataclass(frozen=True)
class Suite:
    name: str
    dataset: str
    methods: tuple[str, ...]
    noise: tuple[tuple[str, float], ...]  # (noise type, rate)
    trials: int
    tune_seeds: int
    final_seeds: int
    train: dict[str, Any]
    origin: str
    estimated: tuple[str, ...] = ()  # methods also run with an estimated T

    def cells(self) -> list[Cell]:
        oracle = [
            Cell(m, kind, rate) for m in self.methods for kind, rate in self.noise
        ]
        estimated = [
            Cell(m, kind, rate, "estimated")
            for m in self.estimated
            for kind, rate in self.noise
        ]
        return oracle + estimated

    def sha(self) -> str:
        body = {k: v for k, v in self.__dict__.items() if k != "origin"}
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:10]


def builtin_suites() -> Path:
    """The suites that ship with noisebench: inside the wheel when installed, else the
    source checkout's leaderboard/suites."""
    packaged = Path(__file__).parent / "_builtin" / "suites"
    return (
        packaged
        if packaged.is_dir()
        else Path(__file__).parent.parent / "leaderboard" / "suites"
    )


def find_suite(name: str, store: Path) -> Path:
    """A .toml path, or a name looked up in <store>/suites, ./leaderboard/suites and
    the suites that ship with noisebench."""
    if name.endswith(".toml"):
        if not Path(name).is_file():
            raise UserError(f"suite file not found: {name}")
        return Path(name)
    places = [Path(store) / "suites", Path("leaderboard") / "suites", builtin_suites()]
    for folder in places:
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    known = sorted({p.stem for f in places if f.is_dir() for p in f.glob("*.toml")})
    from noisebench.errors import unknown

    raise unknown("suite", name, known)


def load_suite(name: str, store: Path) -> Suite:
    path = find_suite(name, store)
    try:
        raw = tomllib.loads(path.read_text())
        noise = tuple(
            (str(block["type"]), float(rate))
            for block in raw["noise"]
            for rate in block["rates"]
        )
        suite = Suite(
            name=raw.get("name", path.stem),
            dataset=raw.get("dataset", "digits"),
            methods=tuple(raw["methods"]),
            noise=noise,
            trials=int(raw.get("trials", 20)),
            tune_seeds=int(raw.get("tune_seeds", 2)),
            final_seeds=int(raw.get("final_seeds", 5)),
            train=dict(raw.get("train", {})),
            origin=str(path),
            estimated=tuple(raw.get("estimated", ())),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
        raise UserError(f"invalid suite {path}: {type(err).__name__}: {err}") from None
    if not suite.methods or not suite.noise:
        raise UserError(f"invalid suite {path}: it needs methods and [[noise]] blocks")
    return suite


def _base_spec(suite: Suite, cell: Cell, device: str):
    """The cell's configuration, params left to the caller."""
    from noisebench.data import resolve_card
    from noisebench.experiment import RunSpec, train_config_for
    from noisebench.noise import NoiseSpec
    from noisebench.registry import get_method

    get_method(cell.method)
    return RunSpec(
        method=cell.method,
        params={},
        dataset=suite.dataset,
        noise=NoiseSpec(kind=cell.noise_type, rate=cell.rate),
        train=train_config_for(resolve_card(suite.dataset), **suite.train),
        device=device,
        transition=cell.transition,
    )


def as_run_spec(suite: Suite, cell: Cell, *, device: str = "auto"):
    """The cell as the board's as-run table shows it: the method's defaults, on the
    suite's final seeds (0, 1, ...)."""
    from noisebench.registry import get_method

    base = _base_spec(suite, cell, device)
    return replace(
        base,
        params=get_method(cell.method).resolve(),
        seeds=tuple(range(suite.final_seeds)),
    )


def cell_spec(suite: Suite, cell: Cell, *, storage: str, device: str, heartbeat: int):
    """The TuneSpec of one cell; every input is checked here, before any work."""
    from noisebench.tune import TuneSpec

    return TuneSpec(
        base=_base_spec(suite, cell, device),
        trials=suite.trials,
        tune_seeds=suite.tune_seeds,
        final_seeds=suite.final_seeds,
        storage=storage,
        heartbeat=heartbeat,
    )


@dataclass
class CellResult:
    cell: Cell
    study: str
    best_params: dict[str, Any]
    final: list[dict[str, Any]]
    ran: bool  # False: its final records were already in the store


def sweep(
    suite: Suite,
    *,
    store: Path,
    storage: str | None = None,
    device: str = "auto",
    heartbeat: int = 10,
    on_cell: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Work on the suite's cells until none is left; return the results of every cell."""
    import optuna

    from noisebench.tune import Surplus, default_storage, open_storage, tune, work

    url = storage or default_storage(store)
    cells = suite.cells()
    specs = [
        cell_spec(suite, c, storage=url, device=device, heartbeat=heartbeat)
        for c in cells
    ]
    # data, noise and params of every cell checked before any training
    names = [cell_study(spec) for spec in specs]
    from noisebench.store import ensure_writable

    ensure_writable(store)
    # A killed worker is not a failed cell: its cell is queued again however often.
    storage = open_storage(url, heartbeat=heartbeat, max_retry=None)
    study = _open_sweep_study(suite, storage, len(cells))
    _requeue_unfinished(study, len(cells))
    results: dict[int, CellResult] = {}

    def run_cell(index: int) -> None:
        result = tune(specs[index], store=store)
        outcome = CellResult(
            cells[index],
            result.study,
            result.best_params,
            result.final,
            not result.final_was_cached,
        )
        results[index] = outcome
        if on_cell is not None:
            on_cell(outcome)

    def objective(trial: optuna.Trial) -> float:
        index = trial.user_attrs.get("cell")
        if index is None:
            raise Surplus("not a queued cell")
        try:
            run_cell(index)
        except Exception as err:
            trial.set_user_attr(
                "error", " ".join(f"{type(err).__name__}: {err}".split())
            )
            raise CellFailed(str(err)) from err
        return 1.0

    work(study, objective, len(cells), new_trials=False, catch=(CellFailed,))
    failed = [
        f"{c.label()} ({_last_error(study, i)})"
        for i, c in enumerate(cells)
        if i not in results and not _done(study, i)
    ]
    if failed:
        raise UserError(
            f"sweep {suite.name}: cells failed: {'; '.join(failed)}; "
            "the same command retries them"
        )
    # Cells finished by other workers (or an earlier run) are reported from the store.
    # One whose final records are not in this store (another --store, deleted shards)
    # is tuned again: its finished study is reused, so only the final runs are redone.
    from noisebench.tune import stored_finals

    missing = [i for i in range(len(cells)) if i not in results]
    stored = stored_finals(
        store, [names[i] for i in missing], tuple(range(suite.final_seeds))
    )
    for i in missing:
        final = stored[names[i]] or []
        params = json.loads(final[0]["params"]) if final else {}
        results[i] = CellResult(cells[i], names[i], params, final, ran=False)
    for i in range(len(cells)):
        if not results[i].final:
            run_cell(i)
    return [results[i] for i in range(len(cells))]


def cell_study(spec) -> str:
    """The cell's study name; preparing its tuning run checks every input."""
    from noisebench.tune import study_name, tuning_run

    return study_name(spec, tuning_run(spec))


def _open_sweep_study(suite: Suite, storage, n_cells: int):
    """Create the sweep study with one queued trial per cell, or join it once it is ready."""
    import optuna

    from noisebench.tune import wait_for_attr

    name = f"sweep-{suite.name}-{suite.sha()}"
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name)
        cells = wait_for_attr(study, "cells")
        if cells is None:
            # its creator was killed before it had queued every cell: queue the rest
            # (a cell queued twice is harmless: its second run reuses the first's work)
            _requeue_unfinished(study, n_cells)
            study.set_user_attr("cells", n_cells)
        elif cells != n_cells:
            raise UserError(
                f"sweep study {name} holds {cells} cells, not this suite's {n_cells}"
            ) from None
        return study
    for index in range(n_cells):
        study.enqueue_trial({}, user_attrs={"cell": index})
    study.set_user_attr("cells", n_cells)  # last: joiners wait for it
    return study


class CellFailed(Exception):
    """A cell whose work raised; its trial keeps the reason."""


def _requeue_unfinished(study, n_cells: int) -> None:
    """Queue again every cell with no finished, queued or running trial: the cells of
    an earlier run that failed, or whose worker died. Every run of the command can
    finish the sweep."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    covered = {
        t.user_attrs.get("cell")
        for t in study.get_trials(deepcopy=False)
        if t.state in live
    }
    for index in range(n_cells):
        if index not in covered:
            study.enqueue_trial({}, user_attrs={"cell": index})


def _last_error(study, index: int) -> str:
    errors = [
        t.user_attrs["error"]
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("cell") == index and "error" in t.user_attrs
    ]
    return errors[-1] if errors else "its worker stopped"


def _done(study, index: int) -> bool:
    return any(
        t.user_attrs.get("cell") == index and t.state.name == "COMPLETE"
        for t in study.get_trials(deepcopy=False)
    )


def describe(result: CellResult) -> dict[str, Any]:
    from noisebench.leaderboard import Stat

    acc = Stat.of([r["test_acc"] for r in result.final if r["status"] == "ok"])
    return {
        "method": result.cell.method,
        "noise_type": result.cell.noise_type,
        "rate": result.cell.rate,
        "transition": result.cell.transition,
        "study": result.study,
        "best_params": result.best_params,
        "test_acc_mean": acc.mean,
        "test_acc_std": acc.std,
        "n": acc.n,
        "ran": result.ran,
    }
