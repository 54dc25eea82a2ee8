"""Checkpoints: written atomically, read without executing pickled code.

A checkpoint is a dict of tensors, numbers and strings (weights, optimizer state, RNG
states, the epoch and the run's config as TOML), saved by `torch.save` and loaded with
`torch.load(weights_only=True)`, which refuses anything but those.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import torch

from .errors import AelabError
from .files import write_atomic


def save(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_atomic(path, buf.getvalue())


def load(path: Path) -> dict:
    if not path.is_file():
        raise AelabError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AelabError(f"{path}: not a readable checkpoint: {first}") from None
    if not isinstance(payload, dict) or not {"model", "config", "data"} <= payload.keys():
        raise AelabError(f"{path}: not an aelab checkpoint (no model weights, config and data shape)")
    return payload
