"""What training carries from step to step: the model, its optimizer and the data's random
stream, where the epoch under way stands, and the checkpoint form of all of it (`payload`,
`restore`), so that a resumed run reaches the bits an uninterrupted one reaches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aelab import config, hardware, registry
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.parts.autoencoder import Autoencoder


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


def setup(cfg: RunConfig, data: ImageData) -> State:
    """A fresh model, optimizer and data generator, all seeded from train.seed."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    device = hardware.device(cfg.train.device)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).to(device)
    # a generator of its own, so that a prior that takes nothing moves no other draw
    model.prior.start(data.train.images, torch.Generator().manual_seed(cfg.train.seed + 2))
    optimizer = registry.build_optimizer(cfg, model.parameters())
    generator = torch.Generator(device=data.device).manual_seed(cfg.train.seed + 1)
    return State(model, optimizer, generator)


def payload(state: State, cfg: RunConfig, data: ImageData, in_epoch: dict | None = None) -> dict:
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


def restore(state: State, payload: dict, device: torch.device, main: bool = True) -> None:
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


def finished(cfg: RunConfig, epochs: int, step_seconds: float) -> bool:
    """Whether a run that trained `epochs` epochs in `step_seconds` of steps is complete."""
    t = cfg.train
    return bool(t.epochs and epochs >= t.epochs) or bool(t.time_budget_min and step_seconds >= t.time_budget_min * 60)
