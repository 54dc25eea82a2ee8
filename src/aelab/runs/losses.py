"""The mean of a model's loss parts over a split: the one loop behind the validation loss
that training selects its best epoch on and the test loss that evaluation reports."""

from __future__ import annotations

import torch

from aelab.parts.autoencoder import Autoencoder


def mean_loss_parts(model: Autoencoder, batches, n: int) -> dict[str, float]:
    """Each part of `model.loss` averaged over the `n` images of `batches`, summed in float64,
    with the KL at full weight (no warm-up): the one loop of validation and test losses."""
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for batch in batches:
        for k, v in model.loss(batch).items():
            sums[k] = sums.get(k, 0) + v.double() * len(batch.y)
    return {k: v.item() / n for k, v in sums.items()}


@torch.no_grad()
def validate(model: Autoencoder, data, batch_size: int) -> dict[str, float]:
    """Mean of each loss part over `data`'s validation split (an ImageData); {} if it is empty."""
    if len(data.val) == 0:
        return {}
    return mean_loss_parts(model, data.eval_batches(data.val, batch_size), len(data.val))
