"""What the hardware offers: the device a run trains on and the precision it runs at.

`train.device` and `train.precision` are names; these tables and functions turn them into a
torch device and an autocast context, chosen from what the hardware reports (`auto`), so that
a default fits the user's machine rather than the author's.
"""

from __future__ import annotations

import math
import os

import torch

from aelab.errors import AelabError, pick

# train.precision -> the dtype the training forward pass is autocast to (None: plain float32);
# "auto" is resolved per device by `precision`. Weights, optimizer state, losses and every
# evaluation stay float32.
PRECISIONS = {"auto": None, "float32": None, "bfloat16": torch.bfloat16}


def mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def _cuda() -> str:
    """The CUDA device of this process (torchrun's LOCAL_RANK, set by distributed.start)."""
    if not torch.cuda.is_available():
        raise AelabError("train.device: 'cuda' asked for, but torch sees no CUDA device")
    return f"cuda:{torch.cuda.current_device()}"


def _mps() -> str:
    if not mps_available():
        raise AelabError("train.device: 'mps' asked for, but torch sees no Apple MPS device")
    return "mps"


# train.device: "auto" takes CUDA, else Apple's MPS, else the CPU.
DEVICES = {"auto": lambda: _cuda() if torch.cuda.is_available() else "mps" if mps_available() else "cpu",
           "cpu": lambda: "cpu", "cuda": _cuda, "mps": _mps}


def device(name: str) -> torch.device:
    """The torch device that `train.device = name` means on this machine."""
    return torch.device(pick(DEVICES, "train.device", name)())


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware, as torch reports it: CUDA
    devices with bfloat16 units (Ampere and later; not those that only emulate it), CPUs with
    AVX-512 BF16 or AMX tiles. Elsewhere bfloat16 is emulated, many times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False  # MPS: float32, the precision every Apple GPU runs at full speed


# What a bfloat16 run costs where the hardware emulates it (docs/experiments/speed.md measures it).
SLOW_BFLOAT16 = ("train.precision = 'bfloat16': this {device} has no native bfloat16 (AVX-512 BF16, AMX or a "
                 "CUDA GPU of compute capability 8.0 or later), so torch emulates it: expect training many times "
                 "slower than in float32; 'auto' chooses for you")


def precision(chosen: str, device: torch.device) -> str:
    """train.precision as it runs on `device`: 'auto' becomes bfloat16 where the hardware runs
    it natively and float32 elsewhere; an explicit choice stays (see `precision_warning`)."""
    pick(PRECISIONS, "train.precision", chosen)
    if chosen == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return chosen


def precision_warning(chosen: str, device: torch.device) -> str | None:
    """One line for an explicit bfloat16 on hardware that only emulates it (it still runs)."""
    if chosen == "bfloat16" and not native_bfloat16(device):
        return SLOW_BFLOAT16.format(device="CPU" if device.type == "cpu" else "GPU")
    return None


def autocast(precision_name: str, device: torch.device, cache: bool = True):
    """The context the training forward pass runs in: mixed precision for 'bfloat16'
    (matrix products and convolutions in bfloat16, reductions and losses in float32, as
    torch.autocast decides per operation); a no-op for 'float32'. `cache = False` for a pass
    that a CUDA graph captures (torch keeps no cast weights across a capture)."""
    dtype = PRECISIONS[precision_name]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=cache)


def conv_layout(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` with its 4-D weights channels-last, the layout oneDNN (CPUs) and cuDNN (GPUs) run
    convolutions fastest in; its activations follow. A network without convolutions is
    unchanged, and so is every model on MPS."""
    return model if device.type == "mps" else model.to(memory_format=torch.channels_last)


# Images per evaluation pass: about this many input values (1,000 digits of 784; 64 photos of
# 64x64x3), so that a convolutional network's activations stay within the caches instead of
# streaming through memory, while digits keep their large batches.
VALUES_PER_BATCH = 2 ** 20
SMALLEST_BATCH = 16


def eval_batch(image_shape: tuple[int, ...], most: int) -> int:
    """Images per evaluation or validation batch for images of `image_shape`: VALUES_PER_BATCH
    input values rounded down to a power of two, at most `most` (train.eval_batch_size)."""
    fits = max(SMALLEST_BATCH, VALUES_PER_BATCH // max(1, math.prod(image_shape)))
    return max(1, min(most, 2 ** int(math.log2(fits))))


def threads_per(jobs: int) -> int:
    """torch threads for each of `jobs` processes sharing this machine: its cores divided
    among them (at least one), so that their thread pools do not wait on each other."""
    return max(1, (os.cpu_count() or 1) // jobs)
