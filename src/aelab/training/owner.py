"""The one owner of "train or resume this run directory", for `aelab train`, a study's runs and
a search's trials alike.

    nothing there, or a run killed before its first checkpoint   trained from the start
    a run with a last checkpoint                                   resumed from it
    a run complete under the config asked for                      left as it is

One rule for what may differ from the run's own config: the keys of training's length and
pace (`RESUMABLE`), which a resumed run takes and records; anything else is another run,
refused in one line. The run directory's lock (runlock.py) is taken here, once, before
anything in it is written, and held while it trains; a caller that must hold it earlier (a
search holds a trial's directory from the moment it picks the trial, so that no other worker
takes it) passes the lock it holds. Under torchrun only the first process writes and locks.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

from aelab import config, registry
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.errors import AelabError
from aelab.runs import runlock
from aelab.runs.rundir import RunDir
from aelab.training import train

# what a resumed run may change: how long and how it trains, not what it trains
RESUMABLE = {"train.epochs", "train.time_budget_min", "train.threads", "train.log_every", "train.eval_batch_size",
             "train.eval_precision", "train.checkpoint_every_min"}


def existing(cfg: RunConfig, path: Path) -> RunDir | None:
    """The run started at `path`, if any, checked against `cfg`: a difference outside RESUMABLE
    is another run, refused."""
    if not (path / "config.toml").is_file():
        return None
    run = RunDir.open(path)
    changed = [line for line in config.diff(run.config(), cfg) if line.split(":")[0].split(" ")[0] not in RESUMABLE]
    if changed:
        raise AelabError(f"{path}: holds a run of another config ({'; '.join(changed)}); "
                         "remove it or choose another --out")
    return run


def complete(run: RunDir, cfg: RunConfig) -> bool:
    """Whether `run` has trained all that `cfg` asks for (its epochs or its minutes)."""
    if not run.is_done() or not run.last_path.is_file():
        return False
    payload, _ = run.checkpoint("last")
    return train.finished(cfg, int(payload["epoch"]), float(payload.get("step_seconds", 0)))


def train_or_resume(cfg: RunConfig, path: Path, data: ImageData, options: train.Options = train.Options(),
                    lock: runlock.Held | None = None, *, new: bool = False) -> RunDir:
    """The run of `cfg` at `path`, complete: left as it is, resumed, or trained from the start
    (the module's docstring). `lock`: the lock on `path` the caller already holds. `new`: a new
    run (`aelab train CONFIG --out`), so that a folder holding anything is refused."""
    path = Path(path)
    if new:
        RunDir.refuse_existing(path)
    run = existing(cfg, path)
    if run and complete(run, cfg):
        print(f"{path}: complete, skipped", file=sys.stderr)
        return run
    registry.check_model(cfg, data)  # a model that cannot be built fails before anything is written
    main = options.group.main
    with ExitStack() as held:
        if main and lock is None:
            path.mkdir(parents=True, exist_ok=True)
            lock = held.enter_context(runlock.locked(path))
        if main and lock.path != path.resolve():
            raise ValueError(f"the lock held is {lock.path}'s, not {path}'s")
        run = existing(cfg, path)  # read again, held: another process may have finished it meanwhile
        if run and complete(run, cfg):
            print(f"{path}: complete, skipped", file=sys.stderr)
            return run
        resume = bool(run and run.last_path.is_file())
        if main:
            run = _prepared(cfg, path, run, resume)
        else:
            run = RunDir(path)
        train.fit(cfg, run, data, options, resume=resume)
    return run


def _prepared(cfg: RunConfig, path: Path, run: RunDir | None, resume: bool) -> RunDir:
    """The run directory, held, made ready to train: resumed with `cfg`'s settings recorded, or
    started afresh (a run killed before its first checkpoint is cleared first)."""
    if resume:
        print(f"{path}: interrupted, resuming from its last checkpoint", file=sys.stderr)
        run.checkpoint("last")  # a checkpoint that does not match fails here, before anything is changed
        run.done_path.unlink(missing_ok=True)
        run.write_config(cfg)
        return run
    if run:
        print(f"{path}: no checkpoint yet; training from the start with its stored config and seed", file=sys.stderr)
        for stale in path.iterdir():
            if stale.is_dir():  # code/: the copy of a user's part files
                shutil.rmtree(stale)
            elif stale.name != ".lock":
                stale.unlink()
    else:
        print(f"{path}: training {cfg.model.short}", file=sys.stderr)
    return RunDir.create(path, cfg)
