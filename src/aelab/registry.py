"""The one place where names in a config become objects.

Every behaviour a config can choose is a row in one of these tables: a model part by its
name in its own table (`PARTS`: the name's settings class, which builds the part), and data,
optimizer, schedule, device and precision by name. `check` validates a whole config against
them before anything is written, so a typo fails at the boundary with the valid names listed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from . import channels, conditions, corruption, datasets, folders, latents, likelihoods, networks, objectives, priors
from .data import Dynamic, Grey, ImageData, Threshold
from .errors import AelabError
from .model import Autoencoder

if TYPE_CHECKING:
    from .config import RunConfig


def _names(*classes) -> dict[str, type]:
    return {cls.name: cls for cls in classes}


# model part -> name -> its settings class (settings.py); `[model.<part>] name = "..."`.
PARTS = {
    "network": _names(networks.MLPSettings, networks.CNNSettings),
    "latent": _names(latents.PointSettings, latents.GaussianLatentSettings),
    "prior": _names(priors.StandardPriorSettings, priors.ConditionalPriorSettings),
    "likelihood": _names(likelihoods.BernoulliSettings, likelihoods.GaussianLikelihoodSettings, likelihoods.LaplaceSettings),
    "objective": _names(objectives.ELBOSettings, objectives.IWAESettings),
    "corruption": _names(corruption.NoCorruptionSettings, corruption.GaussianNoiseSettings),
    "condition": _names(conditions.NoConditionSettings, conditions.LabelSettings),
    "channel": _names(channels.NoChannelSettings, channels.AWGNSettings),
}
# data.name -> Arrays from the data config
DATASETS = {"mnist": lambda d: datasets.load_mnist(d.root),
            "fashion-mnist": lambda d: datasets.load_fashion_mnist(d.root),
            "folder": lambda d: folders.load_arrays(d.root, d.test_root, d.test_fraction, d.image_size)}
BINARIZERS = {"none": Grey, "static": Threshold, "dynamic": Dynamic}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# learning rate at `fraction` (0 to 1) of training, from `lr` (and `lr_min`)
LR_SCHEDULES = {
    "constant": lambda lr, lr_min, fraction: lr,
    "cosine": lambda lr, lr_min, fraction: lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0))),
}
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


def pick(table: dict, key: str, name: str):
    try:
        return table[name]
    except KeyError:
        raise AelabError(f"{key}: unknown {name!r}; choose from {', '.join(table)}") from None


def check(cfg: RunConfig) -> None:
    """Every name in `cfg` is known and the combination makes sense: each part checks itself
    against the rest of the model (the shapes are checked by building it, `check_model`)."""
    m = cfg.model
    for part in m.parts():
        pick(PARTS[part.slot], f"model.{part.slot}.name", part.name)
        part.check(m)
    pick(DATASETS, "data.name", cfg.data.name)
    pick(BINARIZERS, "data.binarize", cfg.data.binarize)
    pick(OPTIMIZERS, "train.optimizer", cfg.train.optimizer)
    pick(LR_SCHEDULES, "train.lr_schedule", cfg.train.lr_schedule)
    pick(DEVICES, "train.device", cfg.train.device)
    pick(PRECISIONS, "train.precision", cfg.train.precision)
    d = cfg.data
    if d.name == "folder":
        if not d.root:
            raise AelabError("data.root: data.name 'folder' needs the folder of training images")
        if bool(d.test_root) == bool(d.test_fraction):
            raise AelabError("data.test_root, data.test_fraction: a folder dataset needs exactly one of them "
                             "(a test folder, or the fraction of data.root to hold out)")
        if d.test_fraction >= 1:
            raise AelabError(f"data.test_fraction: must be below 1, got {d.test_fraction}")
    elif d.test_root or d.test_fraction:
        raise AelabError(f"data.test_root, data.test_fraction: only for data.name 'folder', not {d.name!r}")
    device(cfg)  # 'cuda' or 'mps' where torch sees none: refused here
    if cfg.train.epochs == 0 and not cfg.train.time_budget_min:
        raise AelabError("train.epochs: 0 (no limit) needs a train.time_budget_min")


def build_data(cfg: RunConfig) -> ImageData:
    check(cfg)
    arrays = pick(DATASETS, "data.name", cfg.data.name)(cfg.data)
    n = len(arrays.train_labels)
    if cfg.data.val_size >= n:
        raise AelabError(f"data.val_size: {cfg.data.val_size} leaves none of the {n} training images")
    return ImageData.from_arrays(arrays, BINARIZERS[cfg.data.binarize](), cfg.data.val_size, cfg.data.train_size)


def build_model(cfg: RunConfig, image_shape: tuple[int, ...], num_classes: int) -> Autoencoder:
    check(cfg)
    m = cfg.model
    latent = m.latent.build()
    condition = m.condition.build(num_classes)
    encoder, decoder = m.network.build(image_shape, latent.params_per_dim * m.latent_dim, m.latent_dim, condition.dim)
    return Autoencoder(encoder=encoder, decoder=decoder, latent=latent, likelihood=m.likelihood.build(),
                       latent_dim=m.latent_dim, image_shape=image_shape, condition=condition,
                       corruption=m.corruption.build(), channel=m.channel.build(),
                       objective=m.objective.build(image_shape), prior=m.prior.build(num_classes, m.latent_dim))


def check_model(cfg: RunConfig, data: ImageData) -> None:
    """Build the model of `cfg` for `data` on the meta device (shapes only: no memory, no
    random numbers drawn): a code map that does not fit the image, or convolutions that
    shrink it to nothing, fail here, before anything is written."""
    with torch.device("meta"):
        build_model(cfg, data.image_shape, data.num_classes)


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """The optimizer, fused (one kernel per step for all parameters) where this torch and
    device support it, else torch's default implementation."""
    params = list(params)
    make = OPTIMIZERS[cfg.train.optimizer]
    try:
        return make(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # fused unsupported here (older torch, device, dtype)
        return make(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)


def device(cfg: RunConfig) -> torch.device:
    return torch.device(pick(DEVICES, "train.device", cfg.train.device)())


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware, as torch reports it: CUDA
    devices with bfloat16 units (Ampere and later; not those that only emulate it), CPUs with
    AVX-512 BF16 or AMX tiles. Elsewhere bfloat16 is emulated, many times slower than float32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False  # MPS: float32, the precision every Apple GPU runs at full speed


# What a bfloat16 run costs where the hardware emulates it (measured: one training step of the
# dogs model, batch 64, on a 2-core AMD EPYC with AVX2 and no AVX-512: 0.46 s in float32, 14 s
# in bfloat16).
SLOW_BFLOAT16 = ("train.precision = 'bfloat16': this {device} has no native bfloat16 (AVX-512 BF16, AMX or a "
                 "CUDA GPU of compute capability 8.0 or later), so torch emulates it: expect training many times "
                 "slower than in float32 (30x for the dogs model on an AVX2 CPU); 'auto' chooses for you")


def precision(cfg: RunConfig, device: torch.device) -> str:
    """train.precision as it runs on `device`: 'auto' becomes bfloat16 where the hardware runs
    it natively and float32 elsewhere; an explicit choice stays (see `precision_warning`)."""
    chosen = cfg.train.precision
    pick(PRECISIONS, "train.precision", chosen)
    if chosen == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return chosen


def precision_warning(cfg: RunConfig, device: torch.device) -> str | None:
    """One line for an explicit bfloat16 on hardware that only emulates it (it still runs)."""
    if cfg.train.precision == "bfloat16" and not native_bfloat16(device):
        return SLOW_BFLOAT16.format(device="CPU" if device.type == "cpu" else "GPU")
    return None


def autocast(precision_name: str, device: torch.device):
    """The context the training forward pass runs in: mixed precision for 'bfloat16'
    (matrix products and convolutions in bfloat16, reductions and losses in float32, as
    torch.autocast decides per operation); a no-op for 'float32'."""
    dtype = PRECISIONS[precision_name]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
