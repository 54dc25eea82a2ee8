"""Several processes, one run: torchrun (PyTorch's own launcher) and DistributedDataParallel.

    torchrun --nproc-per-node 4 -m aelab train CONFIG --out runs/x      # 4 GPUs (or CPU processes) here
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d \\
             --rdzv-endpoint HOST:29500 -m aelab train CONFIG --out runs/x   # on each of 2 machines

torchrun starts the processes and sets RANK, WORLD_SIZE and LOCAL_RANK; `start` joins its
process group (NCCL between GPUs, gloo between CPUs). `train.batch_size` stays the global
batch: every process draws the same permutation from the run's seed and takes a contiguous
share of each batch (`Group.rows`), draws the noise of the whole batch and keeps its rows
(noise.py), and DistributedDataParallel averages the gradients, each process's loss weighted
by its share, so N processes run the experiment one process runs. Rank 0 alone validates and
writes metrics, checkpoints and figures. A process that fails ends with its error on stderr;
torchrun then stops the others (it watches every process), so nothing waits forever.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

from aelab import hardware
from aelab.data.splits import Batch
from aelab.errors import AelabError, pick


@dataclass(frozen=True)
class Group:
    """This process's place in the run: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""  # "nccl" | "gloo"; "" for one process

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n: int) -> tuple[int, int]:
        """(first, count) of this process's contiguous share of n rows; shares differ by one at most."""
        base, extra = divmod(n, self.world)
        return self.rank * base + min(self.rank, extra), base + (self.rank < extra)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over all processes, in place (t itself for one process)."""
        if self.world > 1:
            torch.distributed.all_reduce(t, torch.distributed.ReduceOp.SUM)
        return t

    def max(self, value: float, device: torch.device) -> float:
        """The largest of every process's `value`."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, torch.distributed.ReduceOp.MAX)
        return float(t.item())

    def share_rng(self, device: torch.device) -> None:
        """Give every process rank 0's random state (torch's, and the GPU's on CUDA). Rank 0
        alone validates, which draws noise; after this the streams agree again, as they must
        for every process to draw the noise of each global batch that one process draws."""
        if self.world == 1:
            return
        states = [(torch.get_rng_state, torch.set_rng_state)]
        if device.type == "cuda":
            states.append((lambda: torch.cuda.get_rng_state(device), lambda t: torch.cuda.set_rng_state(t, device)))
        carrier = device if self.backend == "nccl" else torch.device("cpu")
        for get, put in states:
            t = get().to(carrier)
            torch.distributed.broadcast(t, src=0)
            put(t.cpu())

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """`module` whose gradients are averaged over the processes (the module itself for one)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def describe(self) -> str:
        return "1 process" if self.world == 1 else f"{self.world} processes ({self.backend})"


SINGLE = Group()


def launched() -> bool:
    """Whether torchrun (or another launcher with its variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device_setting: str) -> Group:
    """Join the process group of a torchrun launch (SINGLE when there is none). Each process
    takes GPU LOCAL_RANK when the run trains on CUDA."""
    if not launched():
        return SINGLE
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    kind = torch.device(pick(hardware.DEVICES, "train.device", device_setting)()).type
    cuda = kind == "cuda"
    if kind == "mps":
        raise AelabError("train.device: several processes on Apple MPS are not supported by torch; "
                         "set train.device = 'cpu' or run one process")
    if cuda:
        if local >= torch.cuda.device_count():
            raise AelabError(f"torchrun: LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s)")
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Group(rank, world, local, backend)


def finish(group: Group) -> None:
    """Leave the process group once every process has finished training (a no-op for one process)."""
    if group.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def leave(group: Group, code: int) -> None:
    """End a process of several with `code` once its work is written: flush the standard
    streams and exit at once, without the interpreter's teardown. That teardown destroys
    torch's and gloo's C++ objects in an order of its own, and on rare occasions aborts
    ("terminate called without an active exception"): torchrun then reports a run whose
    every file was written as failed. A no-op for one process."""
    if group.world == 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class LossModule(nn.Module):
    """`model.loss` as a module's forward, so that DistributedDataParallel sees every step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, progress: float) -> dict[str, torch.Tensor]:
        return self.model.loss(Batch(x, y), progress=progress)
