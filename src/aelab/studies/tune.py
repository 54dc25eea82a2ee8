"""`aelab tune STUDY`: a search over a study's settings ([search], search.py) run by Optuna.

    DIR/optuna.journal     the search (Optuna's JournalStorage, file backend), unless --storage
    DIR/runs/trial-NNNN/   each trial, an ordinary run directory: trained, evaluated, kept
    DIR/figures/           the search's figures and the best trials' own
    DIR/report.html        the report: history, Pareto front, importances, the best trials

Many workers, one search: every worker (the `--jobs` processes of one command, or commands on
several machines that share DIR, a Slurm array say) asks the storage for its next trial inside
an exclusive lock on DIR/.tune.lock, so the trial count is shared exactly and no trial is run
twice; with `--storage URL` (any Optuna RDB URL: PostgreSQL, MySQL) workers that do not share a
folder may overshoot `trials` by up to one trial each. A trial holds its run directory's lock
while it trains (runlock.py): a trial left RUNNING in the storage whose directory nobody holds
was stopped (killed, interrupted) and is taken over by the next worker and resumed from its
last checkpoint, so an interrupted search goes on with the same command and loses no trial.
The base config's own values, where they lie in the space, are the first trial. Trials are
measured, and chosen, on the validation split (RUN/eval_val.json): the test split is read only
by the report, for the best trials once they are chosen; a study without a validation split is
refused.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from aelab import config, hardware
from aelab.errors import AelabError
from aelab.evaluation import classifier
from aelab.studies import pipeline, study
from aelab.studies.folder import StudyDir
from aelab.studies.optuna_search import open_search, optuna_module, sampler
from aelab.studies.search import trial_config
from aelab.training import owner, train
from aelab.runs import runlock

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one worker per folder
    fcntl = None

clock = time.monotonic  # what `search.minutes` is counted by (a fake one in tests)


@contextmanager
def _asking(out: Path):
    """One worker at a time picks its next trial."""
    if fcntl is None:
        yield
        return
    fd = os.open(StudyDir(out).lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_path(out: Path, number: int) -> Path:
    return StudyDir(out).trial(number)


@dataclass(frozen=True)
class Picked:
    """A trial this worker runs, and its run directory, held from the moment it was picked."""

    trial: object  # optuna.trial.Trial
    path: Path
    lock: runlock.Held


def _next_trial(found, s: study.Study, out: Path, held: ExitStack, started: float) -> Picked | None:
    """The next trial for this worker, holding its run directory: a stopped trial taken over,
    else a new one while the budget lasts; None when the search is done."""
    optuna = optuna_module()
    with _asking(out):
        trials = found.get_trials(deepcopy=False)
        for t in trials:
            if t.state == optuna.trial.TrialState.RUNNING:
                path = run_path(out, t.number)
                attempt = ExitStack()
                try:
                    path.mkdir(parents=True, exist_ok=True)
                    lock = attempt.enter_context(runlock.locked(path))
                except AelabError:  # a live worker's
                    continue
                # its worker may have finished it, and let go of it, since the trials were read
                now = next(x for x in found.get_trials(deepcopy=False) if x.number == t.number)
                if now.state != optuna.trial.TrialState.RUNNING:
                    attempt.close()
                    continue
                held.enter_context(attempt.pop_all())
                print(f"{path}: trial {t.number} was stopped; taking it over", file=sys.stderr)
                return Picked(optuna.trial.Trial(found, t._trial_id), path, lock)
        minutes = s.search.minutes
        if len(trials) >= s.search.trials or (minutes and clock() - started > minutes * 60):
            return None
        found.sampler = sampler(s.search, s.search.seed + len(trials))  # each trial its own draws, any worker
        trial = found.ask()
        for p in s.search.space:
            p.suggest(trial)
        path = run_path(out, trial.number)
        path.mkdir(parents=True, exist_ok=True)
        lock = held.enter_context(runlock.locked(path))  # before the ask lock is let go: no one takes it over
        return Picked(trial, path, lock)


def base_params(s: study.Study) -> dict | None:
    """The base config's value of each searched setting, as the trial's params; None where the
    base lies outside the space (a value off a range or not among the choices)."""
    values = config.flat(s.runs[0].config)
    params = {}
    for p in s.search.space:
        if p.key not in values:  # a setting of a part the base does not have
            return None
        v = values[p.key]
        if p.choices:
            params[p.key] = config.toml_value(v)
            if params[p.key] not in [config.toml_value(c) for c in p.choices]:
                return None
        elif p.low <= v <= p.high:
            params[p.key] = v
        else:
            return None
    return params


def enqueue_base(found, s: study.Study) -> None:
    """The base config as the search's first trial, so that every other is measured against it."""
    params = base_params(s)
    if params is not None:
        found.enqueue_trial(params, user_attrs={"base": True})


@dataclass(frozen=True)
class Worker:
    """What every worker of a search needs, the same in each process."""

    study_path: Path
    sets: tuple[str, ...]
    out: Path
    url: str | None
    k: int | None
    threads: int  # 0: torch's default


def work(w: Worker) -> int:
    """Run trials until the search is done; returns how many this worker finished."""
    optuna = optuna_module()
    if w.threads:
        torch.set_num_threads(w.threads)
    s = study.load(w.study_path, w.sets)
    found = open_search(s, w.out, w.url)
    data_of, judging, started, done = pipeline.DataCache(), classifier.Judging.from_env(), clock(), 0
    while True:
        with ExitStack() as held:
            picked = _next_trial(found, s, w.out, held, started)
            if picked is None:
                return done
            trial, path = picked.trial, picked.path
            cfg = trial_config(s.search, s.runs[0].config, trial.params)
            trial.set_user_attr("run", str(path.relative_to(w.out)))
            trial.set_user_attr("overrides", s.search.overrides(trial.params))
            try:
                values = _trial(picked, cfg, data_of(cfg), s, w.k, judging)
            except optuna.TrialPruned:
                found.tell(trial, state=optuna.trial.TrialState.PRUNED)
                print(f"{path}: pruned", file=sys.stderr)
            except (AelabError, train.Diverged) as e:
                trial.set_user_attr("error", str(e))
                found.tell(trial, state=optuna.trial.TrialState.FAIL)
                print(f"{path}: failed: {e}", file=sys.stderr)
            else:
                found.tell(trial, values)
                print(f"{path}: validation " + ", ".join(f"{m} {v:.4g}" for m, v in zip(s.search.metrics, values)),
                      file=sys.stderr)
            done += 1


def _trial(picked: Picked, cfg, data, s: study.Study, k: int | None, judging) -> list[float]:
    """Train (or resume) and evaluate one trial; its objective values."""
    trial, prune = picked.trial, s.search.pruner != "none"
    from aelab.evaluation.evaluate import cached_or_evaluate
    optuna = optuna_module()

    def report(record: dict) -> None:
        value = record.get("val_selection", record.get("val_loss"))
        if value is None:
            return
        trial.report(value, record["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation loss {value:.2f} at epoch {record['epoch']}")

    run = owner.train_or_resume(cfg, picked.path, data, train.Options(progress=False, on_epoch=report if prune else None),
                                picked.lock)
    # the quick measures first (the loss parts, PSNR, SSIM); the deep ones (NLL, probe, judged
    # samples) only where an objective is one of them; the report measures its best trials deeply
    record = cached_or_evaluate(run, data, k=k or s.nll_k, deep=False, judging=judging, split="val")
    if any(not isinstance(record.get(m), (int, float)) for m in s.search.metrics):
        record = cached_or_evaluate(run, data, k=k or s.nll_k, deep=True, judging=judging, split="val")
    missing = [m for m in s.search.metrics if not isinstance(record.get(m), (int, float))]
    if missing:
        raise AelabError(f"{s.path}: search.objectives: {missing[0]} is not measured for this model "
                         f"(measured: {', '.join(k for k, v in record.items() if isinstance(v, float))})")
    return [float(record[m]) for m in s.search.metrics]


def run_search(path: Path, out: Path, how: pipeline.Running = pipeline.Running(), *, url: str | None = None,
               report: bool = True) -> tuple[Path | None, dict]:
    """The search of the study at `path` into `out`, `how.jobs` workers here (each with an equal
    share of the cores), in the storage at `url` (None: OUT/optuna.journal), then its report
    (unless not `report`). Returns the report's path (None without one) and a summary."""
    s, jobs, k, sets = study.load(path, how.sets), how.jobs, how.k, how.sets
    if not s.search:
        raise AelabError(f"{s.path}: has no [search] table: run it with aelab study, or add one (aelab tune --help)")
    if s.runs[0].config.data.val_size == 0:
        raise AelabError(f"{s.path}: data.val_size = 0: aelab tune chooses its trials on the validation split, "
                         "never the test split; hold some training images out (data.val_size > 0)")
    StudyDir(out).check()
    StudyDir(out).begin()
    found = open_search(s, out, url)  # create it once, before workers race to
    with _asking(out):
        if not found.get_trials(deepcopy=False):
            enqueue_base(found, s)
    threads = hardware.threads_per(jobs) if jobs > 1 else 0
    workers = [Worker(s.path, tuple(sets), out, url, k, threads) for _ in range(jobs)]
    if jobs > 1:
        print(f"{jobs} workers, {threads} thread(s) each", file=sys.stderr)
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for future in [pool.submit(work, w) for w in workers]:
                future.result()
    else:
        work(workers[0])
    from aelab.studies import tune_report
    if not report:
        return None, tune_report.summary(open_search(s, out, url).get_trials(deepcopy=False))
    return tune_report.write(s, out, url, k, how.lang or s.lang)

