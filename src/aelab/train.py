"""The trainer. It knows nothing of model kinds: it calls `model.loss(batch, progress)`,
steps the optimizer on `loss`, and logs whatever else the dict holds."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from . import checkpoint, config, registry
from .config import RunConfig
from .data import ImageData
from .model import Autoencoder
from .rundir import RunDir


class Diverged(Exception):
    """The loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class State:
    model: Autoencoder
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # data order and per-batch binarisation
    epoch: int = 0  # epochs completed
    best_val: float = math.inf
    seconds: float = 0.0  # training time so far, across resumes


def setup(cfg: RunConfig, data: ImageData) -> State:
    """A fresh model, optimizer and data generator, all seeded from train.seed."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = registry.device(cfg)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).to(device)
    optimizer = registry.build_optimizer(cfg, model.parameters())
    generator = torch.Generator(device=data.device).manual_seed(cfg.train.seed + 1)
    return State(model, optimizer, generator)


def _payload(state: State, cfg: RunConfig, data: ImageData) -> dict:
    rng = {"torch": torch.get_rng_state(), "data": state.generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
            "epoch": state.epoch, "best_val": state.best_val, "seconds": state.seconds,
            "rng": rng, "config": config.dumps(cfg),
            # enough to rebuild the model without loading the data
            "data": {"image_shape": list(data.image_shape), "num_classes": data.num_classes}}


def _restore(state: State, payload: dict) -> None:
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.epoch, state.best_val = int(payload["epoch"]), float(payload["best_val"])
    state.seconds = float(payload.get("seconds", 0.0))
    torch.set_rng_state(payload["rng"]["torch"])
    state.generator.set_state(payload["rng"]["data"])
    if "cuda" in payload["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])


@torch.no_grad()
def validate(model: Autoencoder, data: ImageData, batch_size: int) -> dict[str, float]:
    """Mean of each loss part over the validation split (KL at full weight); {} if it is empty."""
    if len(data.val) == 0:
        return {}
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for batch in data.eval_batches(data.val, batch_size):
        for k, v in model.loss(batch).items():
            sums[k] = sums.get(k, 0) + v * len(batch.y)
    return {k: v.item() / len(data.val) for k, v in sums.items()}


def _train_epoch(state: State, cfg: RunConfig, data: ImageData, bar: tqdm) -> dict[str, float]:
    model, opt, t = state.model, state.optimizer, cfg.train
    model.train()
    steps = data.steps_per_epoch(t.batch_size)
    keys, sums = None, None  # the loss dict's keys; their image-weighted sums, one tensor
    window = torch.empty(t.log_every, device=data.device)  # the losses since the last sync
    lr_at = registry.LR_SCHEDULES[t.lr_schedule]
    autocast = registry.autocast(cfg, data.device)  # entered once per step; it restores what it changed
    for step, batch in enumerate(data.train_batches(t.batch_size, state.generator), start=1):
        progress = state.epoch + (step - 1) / steps  # in epochs
        for group in opt.param_groups:
            group["lr"] = lr_at(t.lr, t.lr_min, progress / t.epochs)
        with autocast:
            out = model.loss(batch, progress=progress)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        parts = torch.stack([v.detach() for v in out.values()])
        if sums is None:
            keys, sums = list(out), torch.zeros_like(parts)
            at_loss = keys.index("loss")
        sums.add_(parts, alpha=len(batch.y))
        window[(step - 1) % t.log_every] = parts[at_loss]
        if step % t.log_every == 0 or step == steps:  # the only host syncs of the loop
            done = step % t.log_every or t.log_every
            losses = window[:done].tolist()
            bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
            if bad is not None:
                raise Diverged(f"loss became {losses[bad]} at epoch {state.epoch + 1}, step {step - done + 1 + bad}")
            bar.set_postfix_str(f"loss {sum(losses) / done:.2f} nats/image", refresh=False)
            bar.update(done)
    return dict(zip(keys, (sums / len(data.train)).tolist()))


def fit(cfg: RunConfig, run: RunDir, data: ImageData, *, resume: bool = False,
        until_epoch: int | None = None, progress: bool | None = None) -> State:
    """Train for cfg.train.epochs epochs (or stop after `until_epoch`), checkpointing every epoch.

    With `resume`, continue from RUN/last.pt: model, optimizer and both RNG streams are
    restored, so the result is the one an uninterrupted run would have reached.
    """
    data = data.to(registry.device(cfg))
    state = setup(cfg, data)
    if resume:
        payload, _ = run.checkpoint("last")
        _restore(state, payload)
        run.keep_metrics_until(state.epoch)
    stop = min(cfg.train.epochs, until_epoch or cfg.train.epochs)
    steps = data.steps_per_epoch(cfg.train.batch_size)
    while state.epoch < stop:
        start = time.perf_counter()
        desc = f"epoch {state.epoch + 1}/{cfg.train.epochs}"
        # progress None: a bar only on a terminal
        with tqdm(total=steps, desc=desc, unit="step", leave=False, file=sys.stderr,
                  disable=None if progress is None else not progress) as bar:
            train = _train_epoch(state, cfg, data, bar)
        val = validate(state.model, data, cfg.train.eval_batch_size)
        seconds = time.perf_counter() - start
        state.epoch += 1
        state.seconds += seconds
        record = {"epoch": state.epoch, "seconds": round(seconds, 3),
                  "lr": state.optimizer.param_groups[0]["lr"],
                  **state.model.objective.schedule(state.epoch),
                  **{f"train_{k}": v for k, v in train.items()},
                  **{f"val_{k}": v for k, v in val.items()}}
        run.append_metrics(record)
        # Model selection on the validation loss; with no validation split, the last epoch.
        improved = not val or val["loss"] < state.best_val
        if val and improved:
            state.best_val = val["loss"]
        payload = _payload(state, cfg, data)
        checkpoint.save(run.last_path, payload)
        if improved:
            checkpoint.save(run.best_path, payload)
        tqdm.write(_epoch_line(record, cfg.train.epochs, improved), file=sys.stderr)
    if state.epoch >= cfg.train.epochs:
        run.write_json(run.done_path, {"epochs": state.epoch, "train_seconds": round(state.seconds, 2),
                                       "best_val_loss": state.best_val if math.isfinite(state.best_val) else None})
    return state


def _epoch_line(r: dict, epochs: int, improved: bool) -> str:
    split = "val" if "val_loss" in r else "train"
    parts = f"recon {r[f'{split}_recon']:.2f}" + (f" + kl {r[f'{split}_kl']:.2f}" if f"{split}_kl" in r else "")
    return (f"epoch {r['epoch']:>3}/{epochs}  train {r['train_loss']:.2f}  "
            + (f"val {r['val_loss']:.2f} " if split == "val" else "(no validation split) ")
            + f"({split}: {parts}) nats/image  mse {r[f'{split}_mse']:.4f}/pixel  {r['seconds']:.1f} s"
            + ("  *best" if improved and split == "val" else ""))
