"""Evaluation at the hardware's pace: the precision each group of metrics runs its forward
passes in, chosen from the hardware.

Precision (`train.eval_precision`, default auto, resolved by hardware.precision as
train.precision is). Where the hardware multiplies bfloat16 natively (AVX-512 BF16 or AMX
CPUs, Ampere and later GPUs), `auto` runs the forward passes of the groups in BFLOAT16_GROUPS
under bfloat16 autocast, as training does: those whose metrics bfloat16 changes by less than
half a unit of the digit the report prints, on every shipped config measured
(docs/experiments/eval-precision.md; the suite checks it per kind of model):

    channel_curve   the channel's PSNR curve at the sigmas other than the training one (its
                    SSIM at those sigmas, in eval.json only and printed nowhere, does move)
    denoising       PSNR of the noisy input and of the denoised output

The others stay in float32, because bfloat16 moves a printed digit: the loss parts (-ELBO and
its terms), `nll_is` (the log-sum-exp of K importance weights), reconstructions' SSIM (and
with it the image-quality group and the channel at the training sigma), the codes the linear
probe reads (its accuracy), and the judged samples. Elsewhere everything runs in float32, as
it must where bfloat16 is emulated. eval.json records the precision (`eval_precision`).

Batch: hardware.eval_batch, the images per pass for the image size (training's validation
takes the same).
"""

from __future__ import annotations

import contextlib

import torch

from aelab import hardware

# evaluation groups (evaluate.measure's timing names) whose forward passes may run in bfloat16
BFLOAT16_GROUPS = frozenset({"channel_curve", "denoising"})


def forward(group: str, precision_name: str, device: torch.device):
    """The context a group of metrics runs its forward passes in: bfloat16 autocast for a
    group in BFLOAT16_GROUPS when the evaluation runs in bfloat16, else float32."""
    if precision_name == "bfloat16" and group in BFLOAT16_GROUPS:
        return hardware.autocast("bfloat16", device)
    return contextlib.nullcontext()


def runs_apart(group: str, other: str, precision_name: str) -> bool:
    """Whether two groups run their forward passes in different precisions (so that one's
    results may not stand in for the other's)."""
    return precision_name == "bfloat16" and ((group in BFLOAT16_GROUPS) != (other in BFLOAT16_GROUPS))
