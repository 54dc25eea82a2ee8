"""Checkpoints: written atomically, read without executing pickled code.

A checkpoint is a dict of tensors, numbers and strings (weights, optimizer state, RNG
states, the epoch and the run's config as TOML), saved by `torch.save` and loaded with
`torch.load(weights_only=True)`, which refuses anything but those.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from aelab.errors import AelabError
from aelab.files import write_atomic


def save(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_atomic(path, buf.getvalue())


def load(path: Path) -> dict:
    if not path.is_file():
        raise AelabError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file raises many kinds (KeyError, struct.error, ...)
        text = str(e).strip()
        first = f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__
        raise AelabError(f"{path}: not a readable checkpoint: {first}") from None
    if not isinstance(payload, dict) or not {"model", "config", "data"} <= payload.keys():
        raise AelabError(f"{path}: not an aelab checkpoint (no model weights, config and data shape)")
    model = payload["model"]
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()):
        raise AelabError(f"{path}: damaged checkpoint: its weights are not a table of named tensors")
    if not isinstance(payload["config"], str):
        raise AelabError(f"{path}: damaged checkpoint: its config is not text")
    return payload


def check_run(payload: dict, path: Path) -> dict:
    """A training run's checkpoint (train.py writes them), its entries of the types resuming
    and evaluating read; else AelabError."""
    problem = _problem(payload)
    if problem:
        raise AelabError(f"{path}: damaged checkpoint: {problem}")
    return payload


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _problem(payload: dict) -> str | None:
    """What is wrong with the types of a checkpoint's entries, or None."""
    data = payload["data"]
    shape = data.get("image_shape") if isinstance(data, dict) else None
    if not (isinstance(shape, list) and len(shape) == 3 and all(_count(n) and n > 0 for n in shape)
            and _count(data.get("num_classes"))):
        return "its data shape is not [channels, height, width] and a class count"
    for key in ("epoch",):
        if key in payload and not _count(payload[key]):
            return f"its {key} is not a count"
    for key in ("optimizer", "rng"):
        if key in payload and not isinstance(payload[key], dict):
            return f"its {key} state is not a table"
    in_epoch = payload.get("in_epoch")
    if in_epoch is not None and not (isinstance(in_epoch, dict) and isinstance(in_epoch.get("order"), torch.Tensor)
                                     and _count(in_epoch.get("step")) and _count(in_epoch.get("images"))
                                     and isinstance(in_epoch.get("seconds"), float)):
        return "its place inside an epoch is not an order of images, a step, a count of images and seconds"
    return None
