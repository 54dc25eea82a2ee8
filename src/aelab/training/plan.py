"""How this process trains: its device, its precision, its torchrun group, and whether its
steps are replayed as CUDA graphs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aelab import hardware
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.errors import AelabError
from aelab.training import distributed, graphed


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
