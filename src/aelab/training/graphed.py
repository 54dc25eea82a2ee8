"""Training steps, eager or replayed as one CUDA graph.

A small model on a GPU spends its step launching kernels: the MLP VAE's forward, backward and
Adam update are a couple of hundred small operations, each a launch of microseconds. A CUDA graph records them once
and launches them all as one (torch.cuda.graphs). `Steps` keeps one graph of the whole step,
forward, loss, backward and the optimizer's update, captured from a full batch, and replays it
for every later batch that the capture stands for:

- the same shapes: the last, smaller batch of an epoch runs eagerly;
- the same schedule: the graph holds the objective at the progress of its capture, so it
  stands for a step only while `model.objective.schedule(progress)` is what it was then (a
  KL warm-up's steps run eagerly, and the graph is captured once the weight stops moving);
- WARMUP eager steps of that key first, the last of them on a side stream, as torch asks
  before a capture (the optimizer's state, cuBLAS' workspaces and the allocator settle).

The batch is copied into the graph's input tensors, the learning rate lives in a tensor on the
device (a schedule writes into it), and the random draws come from the generator's offsets as
eager draws do, so that a replay computes what the eager step computes. The optimizer is
`capturable`, with that tensor learning rate, in graph mode whether a step is replayed or not,
so that a graphed run is one run however its steps fall, and resumes to the bit (test_gpu.py
checks both on a GPU). Its weights differ from those of `train.cuda_graphs = false` in the last
bits (the learning rate in float32, where eager Adam holds it as a double). A replay runs the captured kernels, not
the parts' Python: per-step state lives in tensors changed in place. A capture that fails (a
part that syncs with the host, say) leaves the step to run eagerly, and the run goes on
eagerly with one warning.

One process only: under torchrun DistributedDataParallel's gradient hooks are not captured.
Everything here but the capture itself runs on a CPU in the tests (`STAND_IN`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

WARMUP = 3  # eager steps of a key before its capture

Body = Callable[[], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Capturer:
    """What a device needs for graphs: where the steps before a capture run, and the capture
    of a step's body as (replay, the dict of tensors each replay writes)."""

    warmup: Callable[[], object]  # a context for the last eager step before a capture
    capture: Callable[[Body], tuple[Callable[[], None], dict[str, torch.Tensor]]]


class _SideStream:
    """The side stream torch's capture examples warm up on, joined to the current one after."""

    def __enter__(self):
        self.main = torch.cuda.current_stream()
        self.side = torch.cuda.Stream()
        self.side.wait_stream(self.main)
        self.context = torch.cuda.stream(self.side)
        self.context.__enter__()

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        self.main.wait_stream(self.side)


def _cuda_capture(body: Body) -> tuple[Callable[[], None], dict[str, torch.Tensor]]:
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # records the kernels; nothing runs until a replay
        out = body()
    return graph.replay, out


def _stand_in_capture(body: Body) -> tuple[Callable[[], None], dict[str, torch.Tensor]]:
    """A capture as far as a CPU can go: nothing runs at the capture, and each replay runs
    the body on the graph's input tensors and leaves its outputs in one dict."""
    out: dict[str, torch.Tensor] = {}
    return lambda: out.update(body()), out


CUDA = Capturer(_SideStream, _cuda_capture)
STAND_IN = Capturer(nullcontext, _stand_in_capture)


def capturer(enabled: bool, device: torch.device, processes: int) -> tuple[Capturer | None, str]:
    """(the capturer for these steps or None, why none in words: '' where there is one)."""
    if device.type != "cuda":
        return None, ""  # nothing to say: graphs are a CUDA matter
    if not enabled:
        return None, "train.cuda_graphs = false"
    if processes > 1:
        return None, "several processes"
    return CUDA, ""


def settle_optimizer(optimizer: torch.optim.Optimizer, graphs: bool, device: torch.device) -> None:
    """Give `optimizer` the form its steps need, also after load_state_dict brought a
    checkpoint's: for graphs a float32 learning-rate tensor on `device` and `capturable` (on
    CUDA); else a float learning rate and not capturable."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, dtype=torch.float32, device=device) if graphs else lr
        group["capturable"] = graphs and device.type == "cuda"
    # the eager steps of a graphed run would each warn that a capturable optimizer runs uncaptured
    optimizer._warned_capturable_if_run_uncaptured = True


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate: written into its tensor where it is one (a graph reads it there)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class Steps:
    """One training step at a time: `steps(x, y, progress, scale, share)` runs the forward
    pass of `objective(x, y, progress)` under `autocast` (and `share()`, the context of this
    process's share of the batch's draws), the backward pass of its loss times `scale`, and the
    optimizer's update, and returns the loss dict. With a `capturer`, the steps a graph stands
    for are replays of it."""

    def __init__(self, objective: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 autocast: Callable[[], object], schedule: Callable[[float], dict],
                 capturer: Capturer | None = None):
        self.objective, self.optimizer, self.autocast, self.schedule = objective, optimizer, autocast, schedule
        self.capturer = capturer
        self.key = None  # what the graph (or the streak of eager steps towards one) stands for
        self.streak = 0  # eager steps of that key in a row
        self.replay: Callable[[], None] | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.out: dict[str, torch.Tensor] = {}
        self.counts = {"eager": 0, "captured": 0, "replayed": 0}

    def _body(self, x: torch.Tensor, y: torch.Tensor, progress: float, scale: float | None,
              share: Callable[[], object]) -> dict[str, torch.Tensor]:
        with self.autocast(), share():
            out = self.objective(x, y, progress)
        self.optimizer.zero_grad(set_to_none=True)
        (out["loss"] * scale if scale is not None else out["loss"]).backward()
        self.optimizer.step()
        return out

    def __call__(self, x: torch.Tensor, y: torch.Tensor, progress: float, scale: float | None = None,
                 share: Callable[[], object] = nullcontext) -> dict[str, torch.Tensor]:
        if self.capturer is None:
            self.counts["eager"] += 1
            return self._body(x, y, progress, scale, share)
        key = (tuple(x.shape), x.dtype, tuple(y.shape), sorted(self.schedule(progress).items()))
        if self.replay is not None and key == self.key:
            self.inputs[0].copy_(x)
            self.inputs[1].copy_(y)
            self.replay()
            self.counts["replayed"] += 1
            return self.out
        if key != self.key:
            if self.key is not None and x.shape[0] < self.key[0][0]:
                # an epoch's last, smaller batch: the graph (or the warm-up towards it) stays for the next epoch
                self.counts["eager"] += 1
                return self._body(x, y, progress, scale, share)
            self.key, self.streak, self.replay, self.inputs = key, 0, None, None
        if self.streak < WARMUP:
            self.streak += 1
            self.counts["eager"] += 1
            with self.capturer.warmup() if self.streak == WARMUP else nullcontext():
                return self._body(x, y, progress, scale, share)
        return self._capture(x, y, progress, scale, share)

    def _capture(self, x, y, progress, scale, share) -> dict[str, torch.Tensor]:
        self.inputs = (x.clone(), y.clone())
        inputs = self.inputs
        self.optimizer.zero_grad(set_to_none=True)  # the eager gradients go before the capture, as torch's examples do
        try:
            self.replay, self.out = self.capturer.capture(lambda: self._body(*inputs, progress, scale, share))
        except Exception as e:  # noqa: BLE001 -- any failure of a capture leaves eager steps
            print(f"aelab: warning: CUDA graphs: the step could not be captured ({str(e).splitlines()[0]}); "
                  "training goes on with eager steps", file=sys.stderr)
            self.capturer, self.replay, self.inputs = None, None, None
            self.counts["eager"] += 1
            return self._body(x, y, progress, scale, share)
        self.counts["captured"] += 1
        self.replay()  # the capture recorded the step; this runs it
        self.counts["replayed"] += 1
        return self.out
