"""The trainer: the loop. It knows nothing of model kinds: it calls `model.loss(batch, progress)`,
steps the optimizer on `loss`, and logs whatever else the dict holds. What happens around it
(checkpoints, metrics, done.json, TensorBoard, the epoch's line, a search's pruning) listens
at fixed points (listeners.py); where the state lives and how it is saved is state.py's."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from aelab import hardware, registry
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.parts import draws
from aelab.runs.losses import validate
from aelab.runs.rundir import RunDir
from aelab.runs.tensorboard import Boards
from aelab.training import budget, distributed, graphed, interrupt, listeners
from aelab.training.listeners import epoch_desc
from aelab.training.plan import Plan, plan
from aelab.training.state import EpochProgress, State, finished, restore, setup

__all__ = ["Diverged", "EpochProgress", "Options", "Plan", "State", "finished", "fit", "plan", "setup", "validate"]


class _Bar(tqdm):
    """tqdm without its monitor thread. The loop updates the bar at every sync anyway, and a
    training process (one of a torchrun launch above all) should hold no thread of its own
    that lives on into the interpreter's teardown."""

    monitor_interval = 0


class Diverged(Exception):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass(frozen=True)
class Options:
    """How a run trains, besides its config: a progress bar (None: on a terminal), a function
    of each epoch's record (after its checkpoint), the torchrun group, and the clock the time
    budget counts by (a fake one in tests)."""

    progress: bool | None = None
    on_epoch: Callable[[dict], None] | None = None
    group: distributed.Group = distributed.SINGLE
    clock: Callable[[], float] = time.perf_counter


@dataclass
class Loop:
    """What every step of the loop reads: the run's settings and data, how this process trains,
    the state, the step function, the budget's clock, the stop flag and the listeners."""

    cfg: RunConfig
    data: ImageData
    plan: Plan
    state: State
    steps_of: graphed.Steps
    clock: budget.Clock
    stopping: interrupt.Flag = interrupt.NEVER
    listening: list[listeners.Listener] = field(default_factory=list)

    def tell(self, event: str, *args) -> None:
        """Call each listener's `event` method (listeners.py) with `args`."""
        for listener in self.listening:
            getattr(listener, event)(*args)


def _train_epoch(loop: Loop, bar: tqdm) -> tuple[dict[str, float], int]:
    """One epoch, or the part of it the time budget leaves, from where `state.partial` left it.
    `steps_of` takes each step: the model's loss (wrapped for DistributedDataParallel under
    torchrun), its backward pass and the optimizer's update, eager or replayed (graphed.py).
    Every train.checkpoint_every_min minutes of steps, and when `stopping` is raised, the
    listeners write a mid-epoch checkpoint; on `stopping` the epoch then raises
    interrupt.Interrupted. The listeners get the loss parts' means at every sync. Returns the
    mean loss parts over the images trained on and the steps taken."""
    state, cfg, data, clock, stopping = loop.state, loop.cfg, loop.data, loop.clock, loop.stopping
    model, opt, t, group, steps_of = state.model, state.optimizer, cfg.train, loop.plan.group, loop.steps_of
    model.train()
    steps = data.steps_per_epoch(t.batch_size)
    p = state.partial or EpochProgress(data.epoch_order(state.generator))
    state.partial = p
    keys, sums, images = p.keys, p.sums, p.images  # the loss dict's keys; their image-weighted sums, one tensor
    window = None  # the loss parts since the last sync, one row a step
    lr_at = registry.LR_SCHEDULES[t.lr_schedule]
    every_s, saved_at = t.checkpoint_every_min * 60, clock.spent  # mid-epoch checkpoints: by training time, agreed

    def set_lr(fraction: float) -> None:
        graphed.set_lr(opt, lr_at(t.lr, t.lr_min, fraction))

    set_lr(budget.fraction(t.epochs, state.epoch + p.step / steps, clock))
    clock.start()
    begun = time.perf_counter() - p.seconds
    step, stop, synced = p.step, False, p.step  # synced: the step of the last sync
    batches = data.train_batches(t.batch_size, state.generator, group.rows, order=p.order, start=p.step)
    for step, batch in enumerate(batches, start=p.step + 1):
        progress = state.epoch + (step - 1) / steps  # in epochs
        total = min(t.batch_size, len(data.train) - (step - 1) * t.batch_size)  # images in the global batch
        if group.world > 1:  # DDP averages the processes' gradients: weight each by its share of the global batch
            out = steps_of(batch.x, batch.y, progress, len(batch.y) * group.world / total,
                           lambda: draws.share(*group.rows(total), total))
        else:
            out = steps_of(batch.x, batch.y, progress)
        clock.step()
        images += total
        parts = torch.stack([v.detach() for v in out.values()])
        if sums is None:
            keys, sums = list(out), torch.zeros_like(parts)
        if window is None:
            window, at_loss = torch.empty(t.log_every, len(keys), device=data.device), keys.index("loss")
        sums.add_(parts, alpha=len(batch.y))
        window[step - 1 - synced] = parts * (len(batch.y) / total)
        # the only host syncs of the loop; near the budget's end (by the estimate), every step
        if step % t.log_every == 0 or step == steps or clock.out() or stopping:
            done, synced = step - synced, step
            rows = group.sum(window[:done]).tolist()  # the global batches' loss parts (waits for the device)
            losses = [row[at_loss] for row in rows]
            clock.read()  # after the wait, so that on a GPU the reading includes the queued steps
            stop = clock.out()  # the budget is spent: by the clock, agreed by every process
            bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
            if bad is not None:
                raise Diverged(f"loss became {losses[bad]} at epoch {state.epoch + 1}, step {step - done + 1 + bad}")
            bar.set_postfix_str(f"loss {sum(losses) / done:.2f} nats/image", refresh=False)
            loop.tell("synced", state, step, {k: sum(col) / done for k, col in zip(keys, zip(*rows))})
            bar.update(done)
            # a signal at the budget's last step lets the epoch end: fit writes its checkpoint and stops
            if (stopping and not stop) or (every_s and step < steps and not stop and clock.spent - saved_at >= every_s):
                p.step, p.images, p.keys, p.seconds = step, images, keys, time.perf_counter() - begun
                total_sums = group.sum(sums)
                sums = total_sums if group.main else torch.zeros_like(total_sums)
                state.step_seconds = clock.spent  # state.seconds counts whole epochs; the epoch's own part is in in_epoch
                loop.tell("saving", state, p.saved(total_sums))
                saved_at = clock.spent
                clock.start()  # the checkpoint's writing is not training time
                if stopping and not stop:
                    raise interrupt.Interrupted(stopping.signum, f"epoch {state.epoch + 1} step {step}")
        # the learning rate of the next step; the last step of a budgeted run leaves lr_min
        set_lr(1.0 if stop else budget.fraction(t.epochs, state.epoch + step / steps, clock))
        if stop:
            break
    state.partial = None
    return dict(zip(keys, (group.sum(sums) / images).tolist())), step


def fit(cfg: RunConfig, run: RunDir, data: ImageData, options: Options = Options(), *, resume: bool = False,
        until_epoch: int | None = None) -> State:
    """Train until cfg.train.epochs epochs or the time budget are spent (or stop after
    `until_epoch`), checkpointing every epoch and every train.checkpoint_every_min minutes
    of steps inside one.

    With `resume`, continue from RUN/last.pt, at an epoch's end or inside one: model,
    optimizer, both RNG streams, the epoch's order and loss sums and the time spent are
    restored, so the result is the one an uninterrupted run would have reached (to the bit
    without a time budget; with one, the same budget is spent in all). The caller holds the
    run directory's lock (training/owner.py takes it). SIGINT or SIGTERM in a single process
    writes last.pt after the step under way and raises interrupt.Interrupted. Under torchrun
    (`options.group`), every process trains its share and rank 0 alone writes.
    """
    group = options.group
    with interrupt.catching() if group.world == 1 else nullcontext(interrupt.NEVER) as stopping, Boards() as boards:
        how = plan(cfg, data, group)
        data = data.to(how.device)
        state = setup(cfg, data)
        if resume:
            restore(state, run.checkpoint("last")[0], how.device, group.main)
        graphed.settle_optimizer(state.optimizer, how.capturer is not None, how.device)  # also over a checkpoint's groups
        # autocast is entered once per step and restores what it changed; a graph's capture needs it without its cache
        autocast = hardware.autocast(how.precision, how.device, cache=how.capturer is None)
        steps_of = graphed.Steps(group.wrap(distributed.LossModule(state.model), how.device), state.optimizer, lambda: autocast,
                                 state.model.objective.schedule, how.capturer)
        clock = budget.Clock(state.step_seconds, cfg.train.time_budget_min * 60, lambda s: group.max(s, how.device),
                             options.clock)
        loop = Loop(cfg, data, how, state, steps_of, clock, stopping)
        if group.main:
            warning = hardware.precision_warning(cfg.train.precision, how.device)
            if warning:
                print(f"aelab: warning: {warning}", file=sys.stderr)
            print(how.describe(), file=sys.stderr)
            steps = data.steps_per_epoch(cfg.train.batch_size)
            loop.listening = [*([listeners.TensorBoard(boards, run, data, steps)] if cfg.train.tensorboard else []),
                              listeners.Recorder(run, cfg, data, how.record()), listeners.EpochLine(cfg, clock),
                              *([listeners.OnEpoch(options.on_epoch)] if options.on_epoch else [])]
        loop.tell("begin", state, resume)
        return _epochs(loop, min(until_epoch or math.inf, cfg.train.epochs or math.inf), options.progress, run)


def _epochs(loop: Loop, stop: float, progress: bool | None, run: RunDir) -> State:
    """Epochs until `stop`, or the budget, is reached; the listeners told of each."""
    state, cfg, data, clock, stopping, group = loop.state, loop.cfg, loop.data, loop.clock, loop.stopping, loop.plan.group
    t, steps = cfg.train, data.steps_per_epoch(cfg.train.batch_size)

    def stopped(where: str) -> interrupt.Interrupted:
        return interrupt.Interrupted(stopping.signum, f"interrupted at {where}; resume with: aelab train --resume {run.path}")

    while state.epoch < stop and (not clock.out() or state.partial):
        start = time.perf_counter() - (state.partial.seconds if state.partial else 0.0)  # a resumed epoch's time before
        # progress None: a bar only on a terminal
        with _Bar(total=steps, initial=state.partial.step if state.partial else 0, desc=epoch_desc(state.epoch + 1, cfg, clock),
                  unit="step", leave=False, file=sys.stderr,
                  disable=(None if progress is None else not progress) if group.main else True) as bar:
            try:
                train, taken = _train_epoch(loop, bar)
            except interrupt.Interrupted as e:
                raise stopped(str(e)) from None
        val = validate(state.model, data, hardware.eval_batch(data.image_shape, t.eval_batch_size)) if group.main else {}
        group.share_rng(loop.plan.device)
        seconds = time.perf_counter() - start
        state.epoch += 1
        state.reached = state.epoch - 1 + taken / steps
        state.seconds += seconds
        state.step_seconds = clock.spent
        if not group.main:
            continue
        record = {"epoch": state.epoch, "seconds": round(seconds, 3), "step_seconds": round(clock.spent, 3),
                  "lr": float(state.optimizer.param_groups[0]["lr"]),
                  **({"steps": taken, "reached": round(state.reached, 3)} if taken < steps else {}),  # a partial epoch
                  **state.model.objective.schedule(state.epoch),
                  **{f"train_{k}": v for k, v in train.items()},
                  **{f"val_{k}": v for k, v in val.items()}}
        # Model selection on the validation loss (or the objective's `selection` part, where it
        # names one); with no validation split, the last epoch.
        score = val.get("selection", val.get("loss"))
        improved = not val or score < state.best_val
        if val and improved:
            state.best_val = score
        loop.tell("epoch", state, record, improved)
        if stopping and state.epoch < stop and not clock.out():
            raise stopped(f"the end of epoch {state.epoch}")
    if finished(cfg, state.epoch, clock.spent):
        loop.tell("end", state, {
            "epochs": state.epoch, "epochs_reached": round(state.reached, 3),
            "stopped_by": "time budget" if clock.out() else "epochs",
            "train_seconds": round(state.seconds, 2), "step_seconds": round(clock.spent, 2),
            "time_budget_min": t.time_budget_min or None,
            "best_val_loss": state.best_val if math.isfinite(state.best_val) else None})
    return state
