"""What the training loop tells at fixed points, and who listens (the loop itself is train.py).

    begin(state, resume)            training starts, or resumes where the checkpoint left it
    synced(state, step, means)      a host sync in an epoch: the loss parts' means since the last
    saving(state, in_epoch)         a mid-epoch checkpoint is due (time, or a signal)
    epoch(state, record, improved)  an epoch ended: its metrics record, and whether val improved
    end(state, done)                training stopped complete: what done.json says

Listeners, in the order the loop calls them: TensorBoard (before the checkpoint, so that its
figures' draws are in the checkpoint's random state as they always were), the run's record
(metrics, last and best checkpoints, done.json), the epoch's line on stderr, and a caller's
`on_epoch` (a search's pruning). Only the process that writes (rank 0 under torchrun) has any.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm import tqdm

from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from aelab.runs.tensorboard import Boards
from aelab.training import budget
from aelab.training.state import State, payload


class Listener:
    """A listener of the loop: each method does nothing unless a subclass says otherwise."""

    def begin(self, state: State, resume: bool) -> None:
        """Training starts (resume: from the checkpoint `state` was restored from)."""

    def synced(self, state: State, step: int, means: dict[str, float]) -> None:
        """The loss parts' means over the steps since the last sync, at step `step` of the epoch."""

    def saving(self, state: State, in_epoch: dict) -> None:
        """A mid-epoch checkpoint is due: `in_epoch` is where the epoch stands (EpochProgress.saved)."""

    def epoch(self, state: State, record: dict, improved: bool) -> None:
        """Epoch `state.epoch` ended with its metrics `record`; `improved`: the best so far."""

    def end(self, state: State, done: dict) -> None:
        """Training is complete; `done` is its summary."""


class Recorder(Listener):
    """The run's record: metrics.jsonl, RUN/last.pt at every epoch and mid-epoch checkpoint,
    RUN/best.pt where validation improved, done.json, and each session's hardware."""

    def __init__(self, run: RunDir, cfg: RunConfig, data: ImageData, hardware: dict):
        self.run, self.cfg, self.data, self.hardware = run, cfg, data, hardware

    def begin(self, state: State, resume: bool) -> None:
        if resume:  # what was logged after the checkpoint is dropped: the run logs it again
            self.run.keep_metrics_until(state.epoch)
        self.run.record_training(self.hardware, state.epoch)

    def saving(self, state: State, in_epoch: dict) -> None:
        checkpoint.save(self.run.last_path, payload(state, self.cfg, self.data, in_epoch))

    def epoch(self, state: State, record: dict, improved: bool) -> None:
        self.run.append_metrics(record)
        saved = payload(state, self.cfg, self.data)
        checkpoint.save(self.run.last_path, saved)
        if improved:
            checkpoint.save(self.run.best_path, saved)

    def end(self, state: State, done: dict) -> None:
        self.run.write_json(self.run.done_path, done)


class TensorBoard(Listener):
    """RUN/tensorboard: the training loss at every sync, and each epoch's record and figures."""

    def __init__(self, boards: Boards, run: RunDir, data: ImageData, steps: int):
        self.boards, self.run, self.data, self.steps, self.board = boards, run, data, steps, None

    def begin(self, state: State, resume: bool) -> None:
        at = state.epoch * self.steps + (state.partial.step if state.partial else 0)
        self.board = self.boards.open(self.run.path, self.steps, at if resume else None)  # a resume drops what came after

    def synced(self, state: State, step: int, means: dict[str, float]) -> None:
        self.board.train(self.board.step_of(state.epoch, step), means)

    def epoch(self, state: State, record: dict, improved: bool) -> None:
        self.board.epoch(state.epoch, record, state.model, self.data)


class EpochLine(Listener):
    """One line on stderr per epoch: its losses in nats per image, its time, whether it is the best."""

    def __init__(self, cfg: RunConfig, clock: budget.Clock):
        self.cfg, self.clock = cfg, clock

    def epoch(self, state: State, record: dict, improved: bool) -> None:
        tqdm.write(epoch_line(record, self.cfg, self.clock, improved), file=sys.stderr)


class OnEpoch(Listener):
    """A caller's function of each epoch's record, after its checkpoint is written (an exception
    it raises, such as a search's pruning, stops training there)."""

    def __init__(self, call: Callable[[dict], None]):
        self.call = call

    def epoch(self, state: State, record: dict, improved: bool) -> None:
        self.call(record)


def epoch_desc(epoch: int, cfg: RunConfig, clock: budget.Clock) -> str:
    """'epoch 3/10', with the minutes spent of a time budget."""
    of = f"/{cfg.train.epochs}" if cfg.train.epochs else ""
    spent = f" ({clock.spent / 60:.1f} of {cfg.train.time_budget_min:g} min)" if clock.budget_s else ""
    return f"epoch {epoch}{of}{spent}"


def epoch_line(r: dict, cfg: RunConfig, clock: budget.Clock, improved: bool) -> str:
    split = "val" if "val_loss" in r else "train"
    # the parts an objective reports beside its loss (a user's may report none)
    parts = " + ".join(f"{k} {r[f'{split}_{k}']:.2f}" for k in ("recon", "kl") if f"{split}_{k}" in r)
    mse = f"  mse {r[f'{split}_mse']:.4f}/pixel" if f"{split}_mse" in r else ""
    return (f"{epoch_desc(r['epoch'], cfg, clock)}  train {r['train_loss']:.2f}  "
            + (f"val {r['val_loss']:.2f} " if split == "val" else "(no validation split) ")
            + (f"({split}: {parts}) " if parts else "") + f"nats/image{mse}  {r['seconds']:.1f} s"
            + ("  *best" if improved and split == "val" else ""))
