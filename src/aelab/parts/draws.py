"""Random draws for a training batch that do not depend on how the batch is split.

Under torchrun each of N processes trains on its rows of every global batch. If each drew
its own noise (the VAE's epsilon, a denoising AE's corruption, channel noise), N processes
would train a different model than one. Instead every process draws the noise of the whole
global batch, from the same random stream, and keeps its own rows: N processes see exactly
the numbers one process sees. With no share set (one process, evaluation) a draw is plain
`torch.randn` of the requested shape, so single-process runs are unchanged to the bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch

# (first row, rows, rows of the global batch) of this process, while a share is set
_share: ContextVar[tuple[int, int, int] | None] = ContextVar("share", default=None)


@contextmanager
def share(first: int, rows: int, total: int):
    """Within this block, batch-shaped draws are rows first..first+rows of a draw for `total` rows."""
    token = _share.set((first, rows, total))
    try:
        yield
    finally:
        _share.reset(token)


def randn(shape: tuple[int, ...], *, batch_dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """N(0, 1) noise of `shape`, whose dimension `batch_dim` runs over the images of the batch."""
    held = _share.get()
    if held is None:
        return torch.randn(shape, dtype=dtype, device=device)
    first, rows, total = held
    if shape[batch_dim] != rows:
        raise ValueError(f"noise for {shape[batch_dim]} rows asked while this process holds {rows} of {total}")
    full = list(shape)
    full[batch_dim] = total
    return torch.randn(full, dtype=dtype, device=device).narrow(batch_dim, first, rows)


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """`torch.randn_like` for a tensor whose first dimension is the batch."""
    return randn(tuple(x.shape), batch_dim=0, dtype=x.dtype, device=x.device)
