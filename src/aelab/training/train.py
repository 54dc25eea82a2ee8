"""The trainer. It knows nothing of model kinds: it calls `model.loss(batch, progress)`,
steps the optimizer on `loss`, and logs whatever else the dict holds."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from aelab import config, hardware, registry
from aelab.config import RunConfig
from aelab.data.splits import Batch, ImageData
from aelab.errors import AelabError
from aelab.parts import draws
from aelab.parts.autoencoder import Autoencoder
from aelab.runs import checkpoint
from aelab.runs.losses import mean_loss_parts
from aelab.runs.rundir import RunDir
from aelab.runs.tensorboard import Board, Boards
from aelab.training import budget, distributed, graphed, interrupt


class _Bar(tqdm):
    """tqdm without its monitor thread. The loop updates the bar at every sync anyway, and a
    training process (one of a torchrun launch above all) should hold no thread of its own
    that lives on into the interpreter's teardown."""

    monitor_interval = 0


class Diverged(Exception):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class EpochProgress:
    """Where an epoch stands: what a mid-epoch checkpoint keeps so that resuming it gives the
    bits an uninterrupted epoch gives."""

    order: torch.Tensor  # the epoch's order of the training images
    step: int = 0  # steps taken
    images: int = 0  # images trained on
    keys: list[str] | None = None  # the loss dict's keys ...
    sums: torch.Tensor | None = None  # ... and their image-weighted sums so far (this process's share)
    seconds: float = 0.0  # wall time spent in the epoch before the checkpoint (for the log)

    def saved(self, sums: torch.Tensor | None) -> dict:
        return {"order": self.order.cpu(), "step": self.step, "images": self.images, "keys": self.keys,
                "sums": None if sums is None else sums.cpu(), "seconds": self.seconds}

    @classmethod
    def restore(cls, saved: dict, device: torch.device, main: bool) -> "EpochProgress":
        sums = saved["sums"]
        if sums is not None:  # the sum over all processes, kept by the first; the others start from 0
            sums = (sums if main else torch.zeros_like(sums)).to(device)
        return cls(saved["order"].to(device), int(saved["step"]), int(saved["images"]), saved["keys"], sums,
                   float(saved["seconds"]))


@dataclass
class State:
    model: Autoencoder
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # data order and per-batch binarisation
    epoch: int = 0  # epochs completed (the last one of a budgeted run may be partial)
    best_val: float = math.inf
    seconds: float = 0.0  # training time so far, validation included, across resumes
    step_seconds: float = 0.0  # time in training steps only: what the time budget counts
    reached: float = 0.0  # epochs reached, with the share of a partial last epoch
    partial: EpochProgress | None = None  # the epoch under way, where a mid-epoch checkpoint left it


@dataclass(frozen=True)
class Plan:
    """How this process trains: on which device, in which precision, in which group."""

    device: torch.device
    precision: str  # resolved: "float32" | "bfloat16"
    group: distributed.Group
    capturer: graphed.Capturer | None = None  # steps replayed as CUDA graphs (graphed.py)
    eager_why: str = ""  # on CUDA without graphs: why

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self.capturer else f", eager steps ({self.eager_why})" if self.eager_why else ""
        return (f"training on {self.device}, {self.precision}, {torch.get_num_threads()} thread(s), "
                f"{self.group.describe()}{graphs}")

    def record(self) -> dict:
        return {"device": str(self.device), "precision": self.precision, "threads": torch.get_num_threads(),
                "processes": self.group.world, "backend": self.group.backend or None,
                "cuda_graphs": self.capturer is not None}


def plan(cfg: RunConfig, data: ImageData, group: distributed.Group = distributed.SINGLE) -> Plan:
    device = hardware.device(cfg.train.device)
    if group.world > 1:  # every process needs rows of every batch
        smallest = len(data.train) % cfg.train.batch_size or cfg.train.batch_size
        if smallest < group.world:
            raise AelabError(f"train.batch_size: the last batch of each epoch holds {smallest} image(s), fewer than "
                             f"the {group.world} processes; choose another batch size or data.train_size")
    capturer, why = graphed.capturer(cfg.train.cuda_graphs, device, group.world)
    return Plan(device, hardware.precision(cfg.train.precision, device), group, capturer, why)


def setup(cfg: RunConfig, data: ImageData) -> State:
    """A fresh model, optimizer and data generator, all seeded from train.seed."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = hardware.device(cfg.train.device)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).to(device)
    optimizer = registry.build_optimizer(cfg, model.parameters())
    generator = torch.Generator(device=data.device).manual_seed(cfg.train.seed + 1)
    return State(model, optimizer, generator)


def _payload(state: State, cfg: RunConfig, data: ImageData, in_epoch: dict | None = None) -> dict:
    rng = {"torch": torch.get_rng_state(), "data": state.generator.get_state()}
    if data.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(data.device)
    return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "epoch": state.epoch, "best_val": state.best_val, "seconds": state.seconds,
            "step_seconds": state.step_seconds, "reached": state.reached,
            "rng": rng, "config": config.dumps(cfg),
            # enough to rebuild the model without loading the data
            "data": {"image_shape": list(data.image_shape), "num_classes": data.num_classes},
            "in_epoch": in_epoch}  # None at an epoch's end


def _restore(state: State, payload: dict, device: torch.device, main: bool = True) -> None:
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.epoch, state.best_val = int(payload["epoch"]), float(payload["best_val"])
    state.seconds = float(payload.get("seconds", 0.0))
    state.step_seconds = float(payload.get("step_seconds", 0.0))
    state.reached = float(payload.get("reached", state.epoch))
    torch.set_rng_state(payload["rng"]["torch"])
    state.generator.set_state(payload["rng"]["data"])
    if "cuda" in payload["rng"] and device.type == "cuda":
        saved = payload["rng"]["cuda"]  # this device's state (a list of all devices' in older checkpoints)
        torch.cuda.set_rng_state(saved[0] if isinstance(saved, list) else saved, device)
    in_epoch = payload.get("in_epoch")
    state.partial = EpochProgress.restore(in_epoch, device, main) if in_epoch else None


@torch.no_grad()
def validate(model: Autoencoder, data: ImageData, batch_size: int) -> dict[str, float]:
    """Mean of each loss part over the validation split; {} if it is empty."""
    if len(data.val) == 0:
        return {}
    return mean_loss_parts(model, data.eval_batches(data.val, batch_size), len(data.val))


class _Objective(nn.Module):
    """`model.loss` as a module's forward, so that DistributedDataParallel sees every step."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        return self.model.loss(Batch(x, y), progress=progress)


def _fraction(cfg: RunConfig, progress: float, clock: budget.Clock) -> float:
    """How far training is (0 to 1) for the schedule: the share of the epochs or of the time
    budget, whichever is further."""
    by_epochs = progress / cfg.train.epochs if cfg.train.epochs else 0.0
    return max(by_epochs, clock.fraction()) if clock.budget_s else by_epochs


def _train_epoch(state: State, cfg: RunConfig, data: ImageData, plan: Plan, steps_of: graphed.Steps,
                 clock: budget.Clock, bar: tqdm, save: Callable[[dict], None],
                 stopping: interrupt.Flag = interrupt.NEVER, board: Board | None = None) -> tuple[dict[str, float], int]:
    """One epoch, or the part of it the time budget leaves, from where `state.partial` left it.
    `steps_of` takes each step: the model's loss (wrapped for DistributedDataParallel under
    torchrun), its backward pass and the optimizer's update, eager or replayed (graphed.py).
    Every train.checkpoint_every_min minutes of steps, and when `stopping` is raised,
    `save(in_epoch)` writes a mid-epoch checkpoint; on `stopping` the epoch then raises
    interrupt.Interrupted. `board` gets the loss parts' means at every sync. Returns the
    mean loss parts over the images trained on and the steps taken."""
    model, opt, t, group = state.model, state.optimizer, cfg.train, plan.group
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

    set_lr(_fraction(cfg, state.epoch + p.step / steps, clock))
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
            if board:
                board.train(board.step_of(state.epoch, step), {k: sum(col) / done for k, col in zip(keys, zip(*rows))})
            bar.update(done)
            # a signal at the budget's last step lets the epoch end: fit writes its checkpoint and stops
            if (stopping and not stop) or (every_s and step < steps and not stop and clock.spent - saved_at >= every_s):
                p.step, p.images, p.keys, p.seconds = step, images, keys, time.perf_counter() - begun
                total_sums = group.sum(sums)
                sums = total_sums if group.main else torch.zeros_like(total_sums)
                save(p.saved(total_sums))
                saved_at = clock.spent
                clock.start()  # the checkpoint's writing is not training time
                if stopping and not stop:
                    raise interrupt.Interrupted(stopping.signum, f"epoch {state.epoch + 1} step {step}")
        # the learning rate of the next step; the last step of a budgeted run leaves lr_min
        set_lr(1.0 if stop else _fraction(cfg, state.epoch + step / steps, clock))
        if stop:
            break
    state.partial = None
    return dict(zip(keys, (group.sum(sums) / images).tolist())), step


def fit(cfg: RunConfig, run: RunDir, data: ImageData, *, resume: bool = False,
        until_epoch: int | None = None, progress: bool | None = None,
        group: distributed.Group = distributed.SINGLE, clock: Callable[[], float] = time.perf_counter,
        on_epoch: Callable[[dict], None] | None = None) -> State:
    """Train until cfg.train.epochs epochs or the time budget are spent (or stop after
    `until_epoch`), checkpointing every epoch and every train.checkpoint_every_min minutes
    of steps inside one.

    With `resume`, continue from RUN/last.pt, at an epoch's end or inside one: model,
    optimizer, both RNG streams, the epoch's order and loss sums and the time spent are
    restored, so the result is the one an uninterrupted run would have reached (to the bit
    without a time budget; with one, the same budget is spent in all). The caller holds the
    run directory's lock (training/owner.py takes it). SIGINT or SIGTERM in a single process writes
    last.pt after the step under way and raises interrupt.Interrupted. Under torchrun
    (`group`), every process trains its share and rank 0 alone writes. `clock` reads the
    seconds that the time budget counts (a fake one in tests). `on_epoch(record)` is called
    with each epoch's metrics record after its checkpoint is written (an exception it raises,
    such as a search's pruning, stops training there).
    """
    with interrupt.catching() if group.world == 1 else nullcontext(interrupt.NEVER) as stopping, \
            Boards() as boards:
        return _fit(cfg, run, data, resume, until_epoch, progress, group, stopping, clock, boards, on_epoch)


def _fit(cfg: RunConfig, run: RunDir, data: ImageData, resume: bool, until_epoch: int | None,
         progress: bool | None, group: distributed.Group, stopping: interrupt.Flag,
         now: Callable[[], float], boards: Boards, on_epoch: Callable[[dict], None] | None = None) -> State:
    how = plan(cfg, data, group)
    data = data.to(how.device)
    state = setup(cfg, data)
    if resume:
        payload, _ = run.checkpoint("last")
        _restore(state, payload, how.device, group.main)
        if group.main:
            run.keep_metrics_until(state.epoch)
    graphed.settle_optimizer(state.optimizer, how.capturer is not None, how.device)  # also over a checkpoint's groups
    # autocast is entered once per step and restores what it changed; a graph's capture needs it without its cache
    autocast = hardware.autocast(how.precision, how.device, cache=how.capturer is None)
    steps_of = graphed.Steps(group.wrap(_Objective(state.model), how.device), state.optimizer, lambda: autocast,
                             state.model.objective.schedule, how.capturer)
    t = cfg.train
    clock = budget.Clock(state.step_seconds, t.time_budget_min * 60, lambda s: group.max(s, how.device), now)
    if group.main:
        warning = hardware.precision_warning(cfg.train.precision, how.device)
        if warning:
            print(f"aelab: warning: {warning}", file=sys.stderr)
        print(how.describe(), file=sys.stderr)
        run.record_training(how.record(), state.epoch)

    def save_in_epoch(in_epoch: dict) -> None:
        state.step_seconds = clock.spent  # state.seconds counts whole epochs; the epoch's own part is in in_epoch
        if group.main:
            checkpoint.save(run.last_path, _payload(state, cfg, data, in_epoch))

    def stopped(where: str) -> interrupt.Interrupted:
        return interrupt.Interrupted(stopping.signum, f"interrupted at {where}; resume with: aelab train --resume {run.path}")

    stop = min(until_epoch or math.inf, t.epochs or math.inf)
    steps = data.steps_per_epoch(t.batch_size)
    board = None
    if t.tensorboard and group.main:  # a resumed run drops what was logged after its checkpoint
        at = state.epoch * steps + (state.partial.step if state.partial else 0)
        board = boards.open(run.path, steps, at if resume else None)
    while state.epoch < stop and (not clock.out() or state.partial):
        done_before = state.partial.seconds if state.partial else 0.0  # wall time of the epoch before a resume
        start = time.perf_counter() - done_before
        # progress None: a bar only on a terminal
        with _Bar(total=steps, initial=state.partial.step if state.partial else 0, desc=_desc(state.epoch + 1, cfg, clock),
                  unit="step", leave=False, file=sys.stderr,
                  disable=(None if progress is None else not progress) if group.main else True) as bar:
            try:
                train, taken = _train_epoch(state, cfg, data, how, steps_of, clock, bar, save_in_epoch, stopping, board)
            except interrupt.Interrupted as e:
                raise stopped(str(e)) from None
        val = validate(state.model, data, hardware.eval_batch(data.image_shape, t.eval_batch_size)) if group.main else {}
        group.share_rng(how.device)
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
        run.append_metrics(record)
        if board:
            board.epoch(state.epoch, record, state.model, data)
        # Model selection on the validation loss (or the objective's `selection` part, where it
        # names one); with no validation split, the last epoch.
        score = val.get("selection", val.get("loss"))
        improved = not val or score < state.best_val
        if val and improved:
            state.best_val = score
        payload = _payload(state, cfg, data)
        checkpoint.save(run.last_path, payload)
        if improved:
            checkpoint.save(run.best_path, payload)
        tqdm.write(_epoch_line(record, cfg, clock, improved), file=sys.stderr)
        if on_epoch:
            on_epoch(record)
        if stopping and state.epoch < stop and not clock.out():
            raise stopped(f"the end of epoch {state.epoch}")
    if finished(cfg, state.epoch, clock.spent) and group.main:
        run.write_json(run.done_path, {
            "epochs": state.epoch, "epochs_reached": round(state.reached, 3),
            "stopped_by": "time budget" if clock.out() else "epochs",
            "train_seconds": round(state.seconds, 2), "step_seconds": round(clock.spent, 2),
            "time_budget_min": t.time_budget_min or None,
            "best_val_loss": state.best_val if math.isfinite(state.best_val) else None})
    return state


def finished(cfg: RunConfig, epochs: int, step_seconds: float) -> bool:
    """Whether a run that trained `epochs` epochs in `step_seconds` of steps is complete."""
    t = cfg.train
    return bool(t.epochs and epochs >= t.epochs) or bool(t.time_budget_min and step_seconds >= t.time_budget_min * 60)


def _desc(epoch: int, cfg: RunConfig, clock: budget.Clock) -> str:
    of = f"/{cfg.train.epochs}" if cfg.train.epochs else ""
    spent = f" ({clock.spent / 60:.1f} of {cfg.train.time_budget_min:g} min)" if clock.budget_s else ""
    return f"epoch {epoch}{of}{spent}"


def _epoch_line(r: dict, cfg: RunConfig, clock: budget.Clock, improved: bool) -> str:
    split = "val" if "val_loss" in r else "train"
    # the parts an objective reports beside its loss (a user's may report none)
    parts = " + ".join(f"{k} {r[f'{split}_{k}']:.2f}" for k in ("recon", "kl") if f"{split}_{k}" in r)
    mse = f"  mse {r[f'{split}_mse']:.4f}/pixel" if f"{split}_mse" in r else ""
    return (f"{_desc(r['epoch'], cfg, clock)}  train {r['train_loss']:.2f}  "
            + (f"val {r['val_loss']:.2f} " if split == "val" else "(no validation split) ")
            + (f"({split}: {parts}) " if parts else "") + f"nats/image{mse}  {r['seconds']:.1f} s"
            + ("  *best" if improved and split == "val" else ""))
