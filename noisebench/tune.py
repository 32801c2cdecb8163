"""Optuna tuning that is fair by construction (DESIGN.md §4, §8).

- Every method gets the same budget: `trials` finished trials (completed or pruned),
  sampled by a seeded TPE from the method's declared search space; trial 0 is the
  method's defaults.
- The objective is the mean over the tuning seeds of the best noisy-validation accuracy
  (a diverged seed counts as 0). The clean test set is never handed to the engine while
  tuning. Tuning seeds (1000, 1001, ...) are never the final seeds (0, 1, ...).
- Studies live in Optuna's RDB storage: a SQLite file in the store by default, or any
  SQLAlchemy URL (PostgreSQL) shared by workers on many machines. Heartbeats mark a dead
  worker's trial as failed, and a retry callback queues it again for the others.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from noisebench.errors import UserError
from noisebench.experiment import Prepared, RunSpec, prepare, run
from noisebench.records import canonical_json
from noisebench.space import Categorical, Float, Int

TUNE_SEED_OFFSET = 1000
SPEC_ATTR = "noisebench_spec"


@dataclass(frozen=True)
class TuneSpec:
    """A tuning request. `base.params` holds only the pinned (`--param`) values."""

    base: RunSpec
    trials: int = 20
    tune_seeds: int = 2
    final_seeds: int = 5
    first_seed: int = 0  # final seeds are first_seed, first_seed + 1, ...
    noise_seed: int | None = (
        None  # one noise realization for every run (default: per seed)
    )
    storage: str | None = None  # None: sqlite file in the store
    study: str | None = None  # None: derived from the spec
    timeout: float | None = None
    heartbeat: int = 10  # seconds; a trial silent for 2x this is taken as dead
    prune: bool = True
    sampler_seed: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UserError(f"--trials must be >= 1, got {self.trials}")
        if self.tune_seeds < 1 or self.final_seeds < 1:
            raise UserError("--tune-seeds and --final-seeds must be >= 1")
        if self.heartbeat < 1:
            raise UserError(f"--heartbeat must be >= 1 second, got {self.heartbeat}")
        overlap = set(self.final_seed_range) & set(self.tune_seed_range)
        if overlap:
            raise UserError(
                f"final seeds {min(overlap)}.. overlap the tuning seeds "
                f"{TUNE_SEED_OFFSET}..{TUNE_SEED_OFFSET + self.tune_seeds - 1}: the "
                "result must come from seeds the search never saw"
            )

    @property
    def tune_seed_range(self) -> tuple[int, ...]:
        return tuple(TUNE_SEED_OFFSET + i for i in range(self.tune_seeds))

    @property
    def final_seed_range(self) -> tuple[int, ...]:
        return tuple(range(self.first_seed, self.first_seed + self.final_seeds))

    def noise_seeds(self, n: int) -> tuple[int, ...] | None:
        return None if self.noise_seed is None else (self.noise_seed,) * n


@dataclass
class TuneResult:
    study: str
    storage: str
    trials: list[Any]  # optuna FrozenTrials, best first
    best_params: dict[str, Any]
    best_trial: int | None
    final: list[dict[str, Any]]
    final_was_cached: bool


def tuning_run(spec: TuneSpec) -> Prepared:
    """The data and noise of the tuning seeds, validated, ready for trials."""
    seeds = spec.tune_seed_range
    return prepare(
        replace(
            spec.base,
            seeds=seeds,
            noise_seeds=spec.noise_seeds(len(seeds)),
            phase="tune",
        )
    )


def study_identity(spec: TuneSpec, prepared: Prepared) -> dict[str, Any]:
    """What a study is about. Workers that agree on it share the study."""
    from noisebench.experiment import teacher_identity
    from noisebench.noise import matrix_sha
    from noisebench.records import noise_generator

    return {
        "method": prepared.method.name,
        "method_version": prepared.method.version,
        "method_origin": prepared.method.origin,
        "method_sha": prepared.method.source_sha,
        "pinned": spec.base.params,
        "dataset": prepared.dataset.name,
        "dataset_sha": prepared.dataset.sha,
        "noise": {
            "kind": spec.base.noise.kind,
            "rate": spec.base.noise.rate,
            "mode": spec.base.noise.mode,
        },
        "transition_sha": matrix_sha(prepared.transition),
        **noise_generator(spec.base.noise.kind),
        # distillation: the teacher (absent otherwise, so other studies keep their names)
        **(
            {"teacher": teacher_identity(prepared.spec.teacher)}
            if prepared.spec.teacher is not None
            else {}
        ),
        # human noise: the labels themselves (two files can share one realized T)
        **(
            {"labels_sha": prepared.spec.noise.labels_sha}
            if prepared.spec.noise.labels_sha is not None
            else {}
        ),
        # only when estimated, so that the studies of oracle-T runs keep their names
        **(
            {"transition_source": "estimated"}
            if spec.base.transition != "oracle"
            else {}
        ),
        "train": spec.base.train.identity(),
        "tune_seeds": spec.tune_seeds,
        # only when fixed, so that the studies of per-seed noise keep their names
        **({"noise_seed": spec.noise_seed} if spec.noise_seed is not None else {}),
        "objective": "mean best noisy-validation accuracy",
    }


def study_name(spec: TuneSpec, prepared: Prepared) -> str:
    identity = study_identity(spec, prepared)
    digest = hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:10]
    noise = spec.base.noise
    return f"{identity['method']}-v{identity['method_version']}-{identity['dataset']}-{noise.kind}-{noise.rate:g}-{digest}"


def default_storage(store: str | Path) -> str:
    path = Path(store) / "optuna.db"
    return f"sqlite:///{path.resolve()}"


def quiet_optuna() -> None:
    """Our own output says what happened. Heartbeats and the retry callback are marked
    experimental; they are what we rely on."""
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def open_storage(url: str, *, heartbeat: int, max_retry: int | None = 3):
    """An RDBStorage with heartbeats, or a UserError. A trial whose worker died is
    queued again with the same params, at most `max_retry` times (None: always)."""

    import sqlalchemy.exc

    quiet_optuna()

    retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    callback = {}
    if retry_cls is not None:  # Optuna >= 4.9
        callback["heartbeat_stale_trial_callback"] = retry_cls(max_retry=max_retry)
    else:
        callback["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(
            max_retry=max_retry
        )
    engine_kwargs = (
        {"connect_args": {"timeout": 60}}
        if url.startswith("sqlite")
        else {"pool_pre_ping": True}
    )
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(5):
        try:
            storage = HeartbeatStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                **callback,
            )
            if url.startswith("sqlite"):
                _serialize_sqlite(storage.engine)
            return storage
        except (
            sqlalchemy.exc.SQLAlchemyError,
            ImportError,
            ValueError,
            OSError,
        ) as err:
            if _creation_race(err) and attempt < 4:
                time.sleep(0.5 * (attempt + 1))
                continue
            reason = (
                str(err).strip().splitlines()[0]
                if str(err).strip()
                else type(err).__name__
            )
            raise UserError(f"cannot open storage {redact(url)}: {reason}") from None


class HeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage whose stale trials include those of a worker that died before its
    first heartbeat.

    Optuna takes a trial as stale only once it has a heartbeat gone silent. A worker
    killed between creating a trial and its heartbeat thread's first beat leaves a trial
    that is RUNNING for ever, and a study that can never reach its budget. The other
    workers would wait on it for ever; the two-worker kill test once caught this. Here
    every worker beats from a trial's first moment, so a trial still without a heartbeat
    a grace period after it started is dead too.
    """

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        from datetime import datetime, timedelta

        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from optuna.trial import TrialState

        stale = super()._get_stale_trial_ids(study_id)
        with _create_scoped_session(self.scoped_session) as session:
            never_beat = [
                trial_id
                for (trial_id,) in session.query(models.TrialModel.trial_id)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(~models.TrialModel.heartbeats.any())
            ]
        grace = self.grace_period or 2 * self.heartbeat_interval
        cutoff = datetime.now() - timedelta(seconds=grace)
        silent = [t for t in never_beat if self.get_trial(t).datetime_start < cutoff]
        return stale + [t for t in silent if t not in stale]


def _serialize_sqlite(engine) -> None:
    """Make SQLite hand a queued trial to one worker only.

    pysqlite defers BEGIN until the first write, so two workers can both read a queued
    trial as WAITING and both claim it. BEGIN IMMEDIATE takes the write lock before the
    read (SQLAlchemy's recipe for SQLite transactions); PostgreSQL needs none of this.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners existed are dropped


def _creation_race(err: Exception) -> bool:
    """Workers that meet a new database at once race to create its tables; the losers
    see one of these errors and find the tables made a moment later."""
    import sqlalchemy.exc

    text = str(err).lower()
    return isinstance(err, sqlalchemy.exc.IntegrityError) or any(
        sign in text
        for sign in ("already exists", "database is locked", "duplicate key")
    )


def redact(url: str) -> str:
    """The URL without its password, for messages and records."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        credentials, _, host = tail.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{head}://{user}:***@{host}"
    return url


def open_study(spec: TuneSpec, prepared: Prepared, storage, name: str):
    """Create the study, or join it; refuse a study that belongs to another spec."""
    identity = canonical_json(study_identity(spec, prepared))
    sampler = sampler_for(spec)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
        if spec.prune
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(
            storage=storage, study_name=name, sampler=sampler, pruner=pruner
        )
        owner = wait_for_attr(study, SPEC_ATTR)
        if owner is None:
            # its creator was killed before it had queued the defaults and signed it
            _enqueue_defaults(study, spec, prepared)
            study.set_user_attr(SPEC_ATTR, identity)
        elif owner != identity:
            raise UserError(
                f"study '{name}' belongs to a different spec; pick another --study or drop --study "
                "to use the derived name"
            ) from None
        return study
    _enqueue_defaults(study, spec, prepared)
    # Last, since joiners wait for it: by then trial 0 is queued.
    study.set_user_attr(SPEC_ATTR, identity)
    return study


def _enqueue_defaults(study, spec: TuneSpec, prepared: Prepared) -> None:
    """Queue the method's defaults as the first trial, unless a trial holds them."""
    free = {
        k: v for k, v in prepared.method.defaults.items() if k not in spec.base.params
    }
    queued = any(t.user_attrs.get("defaults") for t in study.get_trials(deepcopy=False))
    if free and not queued:  # trial 0: the defaults
        study.enqueue_trial(free, user_attrs={"defaults": True})


def sampler_for(spec: TuneSpec):
    return TrialSeededTPE(spec.sampler_seed)


class TrialSeededTPE(optuna.samplers.BaseSampler):
    """TPE whose randomness is seeded by (seed, trial number).

    One seeded TPESampler per worker would make every worker propose the same values.
    Trial numbers are handed out by the storage, so with this sampler workers propose
    different values, and a single worker's study is still reproducible.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._samplers: dict[int, Any] = {}

    def _for(self, trial):
        from noisebench.sampling import derive_seed

        if trial.number not in self._samplers:
            seed = derive_seed(self.seed, trial.number) % 2**32
            self._samplers = {trial.number: optuna.samplers.TPESampler(seed=seed)}
        return self._samplers[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        return self._for(trial).sample_independent(study, trial, name, distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: the seed comes from the trial number."""


def wait_for_attr(study, key: str, seconds: float = 30.0):
    """A joiner may arrive between the creator's create_study and its set_user_attr."""
    deadline = time.monotonic() + seconds
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def suggest(trial, name: str, dist) -> Any:
    if isinstance(dist, Float):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    if isinstance(dist, Int):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    assert isinstance(dist, Categorical)
    return trial.suggest_categorical(name, list(dist.choices))


class Surplus(Exception):
    """A trial beyond the budget, started by a worker that raced another for the last one."""


def make_objective(
    spec: TuneSpec,
    prepared: Prepared,
    name: str,
    *,
    store: Path | None,
    on_trial: Callable[[int], None] | None = None,
):
    method = prepared.method
    free = {k: d for k, d in method.search_space.items() if k not in spec.base.params}

    def objective(trial: optuna.Trial) -> float:
        _check_budget(trial, spec.trials)
        params = {
            **spec.base.params,
            **{k: suggest(trial, k, d) for k, d in free.items()},
        }
        run_spec = replace(
            prepared.spec, params=method.resolve(params), study=name, trial=trial.number
        )
        best_so_far = [-math.inf]

        def report(epoch: int, val_acc) -> None:
            # the running best of the mean over seeds; float() is one sync per epoch
            best_so_far[0] = max(best_so_far[0], float(val_acc.mean()))
            trial.report(best_so_far[0], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        records = run(replace(prepared, spec=run_spec), on_epoch=report)
        if store is not None:
            from noisebench.store import write_records

            write_records(records, store)
        if on_trial is not None:
            on_trial(trial.number)
        return sum(
            r["best_val_acc"] if r["status"] == "ok" else 0.0 for r in records
        ) / len(records)

    return objective


def _check_budget(trial, budget: int) -> None:
    """Among the trials that did not fail, only the first `budget` (by number) may run."""
    from optuna.trial import TrialState

    alive = [
        t.number
        for t in trial.study.get_trials(deepcopy=False)
        if t.state != TrialState.FAIL
    ]
    if sorted(alive).index(trial.number) >= budget:
        trial.set_user_attr("surplus", True)
        raise Surplus(f"trial {trial.number} is beyond the budget of {budget}")


def finished(study) -> int:
    from optuna.trial import TrialState

    return len(
        study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
    )


def work(
    study,
    objective,
    budget: int,
    *,
    timeout: float | None = None,
    new_trials: bool = True,
    poll: float = 0.5,
    catch: tuple[type[Exception], ...] = (),
) -> None:
    """Run trials until the study has `budget` finished ones (whoever ran them).

    Unlike `study.optimize(n_trials=...)`, which counts this worker's trials only, this
    counts the study's: N workers on one study finish exactly `budget` trials. A worker
    with nothing left to start waits while others' trials run, and fails stale ones, so
    that a dead worker's trial is queued again and run here. With `new_trials=False`
    only queued (enqueued or retried) trials are run.
    """
    from optuna.trial import TrialState

    deadline = None if timeout is None else time.monotonic() + timeout
    while finished(study) < budget:
        if deadline is not None and time.monotonic() > deadline:
            return
        trials = study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        room = new_trials and finished(study) + running < budget
        if not waiting and not room:
            if not running:
                return  # nothing queued and nothing running: the rest failed for good
            optuna.storages.fail_stale_trials(study)
            time.sleep(poll)
            continue
        study.optimize(objective, n_trials=1, catch=(Surplus, *catch))


def final_records(
    store: Path, name: str, seeds: tuple[int, ...], *, trial: int | None | str = "any"
) -> list[dict[str, Any]] | None:
    """The final runs of a study already in the store (of one trial's params, unless
    `trial` is "any"), if every seed is there."""
    return stored_finals(store, [name], seeds, trial=trial)[name]


def stored_finals(
    store: Path,
    names: list[str],
    seeds: tuple[int, ...],
    *,
    trial: int | None | str = "any",
) -> dict[str, list[dict[str, Any]] | None]:
    """`final_records` of several studies from one read of the store: a sweep's end
    asks for every cell's, and reading the store once per cell took minutes."""
    from noisebench.leaderboard import dedupe
    from noisebench.store import read_records

    wanted = set(names)
    by_study: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in names}
    for r in dedupe(read_records(store).to_pylist()):
        if (
            r["phase"] == "final"
            and r["study"] in wanted
            and r["status"] in ("ok", "diverged")
            and (trial == "any" or r["trial"] == trial)
        ):
            by_study[r["study"]][r["seed"]] = r
    return {
        name: [runs[s] for s in seeds] if set(seeds) <= set(runs) else None
        for name, runs in by_study.items()
    }


def tune(
    spec: TuneSpec,
    *,
    store: Path,
    record: bool = True,
    workers: int = 1,
    on_trial: Callable[[int], None] | None = None,
) -> TuneResult:
    """Search (unless the space is empty), then run the best params on the final seeds.

    Work already done is reused: trials from the study, and final runs from the store.
    When the store has a study's final runs but the storage has lost the study (another
    machine's database, or a deleted file), the search is not repeated. With
    `record=False` nothing is written: no records, and the study (unless a storage URL
    is given) lives in memory.
    """
    quiet_optuna()
    prepared = tuning_run(spec)  # every input check, before anything is created
    name = spec.study or study_name(spec, prepared)
    url = spec.storage or (default_storage(store) if record else None)
    if url is None and workers > 1:
        raise UserError(
            "--no-record keeps the study in memory, which --workers cannot share; "
            "give --storage URL"
        )
    records = store if record else None
    if records is not None:
        from noisebench.store import ensure_writable

        ensure_writable(records)
    storage = (
        optuna.storages.InMemoryStorage()
        if url is None
        else open_storage(url, heartbeat=spec.heartbeat)
    )
    where = "memory" if url is None else redact(url)
    free = [k for k in prepared.method.search_space if k not in spec.base.params]
    final_seeds = spec.final_seed_range
    known = None if records is None else final_records(records, name, final_seeds)
    if free and known is not None and name not in optuna.get_all_study_names(storage):
        params = json.loads(known[0]["params"])
        return TuneResult(name, where, [], params, known[0]["trial"], known, True)
    trials, best_params, best_trial = [], dict(spec.base.params), None
    if free:
        study = open_study(spec, prepared, storage, name)
        if workers > 1:
            _spawn_workers(spec, records, workers, name, url)
        else:
            objective = make_objective(
                spec, prepared, name, store=records, on_trial=on_trial
            )
            work(study, objective, spec.trials, timeout=spec.timeout)
        done = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.value is not None and t.state.name == "COMPLETE"
        ]
        if not done:
            raise UserError(
                f"study '{name}' has no completed trial (all pruned or failed)"
            )
        trials = sorted(done, key=lambda t: -t.value)
        best_params |= trials[0].params
        best_trial = trials[0].number
    # Final runs of the current best trial only: a larger budget may have found a better one.
    cached = (
        None
        if records is None
        else final_records(records, name, final_seeds, trial=best_trial)
    )
    final = cached
    if final is None:
        final_spec = replace(
            spec.base,
            params=best_params,
            seeds=final_seeds,
            noise_seeds=spec.noise_seeds(len(final_seeds)),
            phase="final",
            study=name,
            trial=best_trial,
        )
        final = run(prepare(final_spec))
        if records is not None:
            from noisebench.store import write_records

            write_records(final, records)
    return TuneResult(
        name, where, trials, best_params, best_trial, final, cached is not None
    )


def worker_threads(workers: int, cores: int | None = None) -> int:
    """CPU threads for each of `workers` local workers: the cores shared out, at least
    one each. Left alone, torch gives every process one thread per core, so N workers
    would run N threads per core and contend for them."""
    if cores is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cores = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    return max(1, cores // workers)


def _spawn_workers(
    spec: TuneSpec, store: Path | None, workers: int, name: str, url: str
) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    threads = worker_threads(workers)
    procs = [
        context.Process(target=_worker_main, args=(spec, store, name, url, threads))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise UserError(
            f"{len(failed)} of {workers} workers failed (exit codes {failed})"
        )


def _worker_main(
    spec: TuneSpec, store: Path | None, name: str, url: str, threads: int
) -> None:
    import torch

    torch.set_num_threads(min(torch.get_num_threads(), threads))
    prepared = tuning_run(spec)
    storage = open_storage(url, heartbeat=spec.heartbeat)
    study = open_study(spec, prepared, storage, name)
    objective = make_objective(spec, prepared, name, store=store)
    work(
        study,
        objective,
        spec.trials,
        timeout=spec.timeout,
    )


def summary_json(result: TuneResult) -> dict[str, Any]:
    return {
        "study": result.study,
        "storage": result.storage,
        "best_trial": result.best_trial,
        "best_params": result.best_params,
        "trials": [
            {
                "number": t.number,
                "value": t.value,
                "params": t.params,
                "defaults": bool(t.user_attrs.get("defaults")),
            }
            for t in result.trials
        ],
    }


def params_text(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)
