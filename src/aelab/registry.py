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

from aelab import hardware
from aelab.course import model as course
from aelab.data import folders, sources
from aelab.data.splits import DynamicBinary, GreyLevels, ImageData, StaticBinary
from aelab.errors import AelabError, pick
from aelab import userparts
from aelab.parts.autoencoder import Autoencoder, Parts
from aelab.parts.catalog import PARTS
from aelab.parts.inits import INITS
from aelab.parts.slots import Decoder, Encoder, Latent, Objective, Prior

if TYPE_CHECKING:
    from aelab.config import RunConfig


# data.name -> Arrays from the data config
DATASETS = {"mnist": lambda d: sources.load_mnist(d.root),
            "fashion-mnist": lambda d: sources.load_fashion_mnist(d.root),
            "folder": lambda d: folders.load_arrays(d.root, d.test_root, d.test_fraction, d.image_size)}
BINARIZERS = {"none": GreyLevels, "static": StaticBinary, "dynamic": DynamicBinary}
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
# learning rate at `fraction` (0 to 1) of training, from `lr` (and `lr_min`)
BURDA_STAGES = 8  # Burda et al. (2016), sec. 5: stage i (0 to 7) of 3^i passes at lr 10^(-i/7), 3,280 passes in all


def burda_stage(fraction: float) -> int:
    """The stage of Burda et al.'s schedule at `fraction` of training, its 3,280 passes scaled
    to the epochs or the time budget: stage i ends after (3^(i+1) - 1) / 2 of them."""
    passes = min(max(fraction, 0.0), 1.0) * (3 ** BURDA_STAGES - 1) / 2
    return next((i for i in range(BURDA_STAGES) if passes < (3 ** (i + 1) - 1) / 2), BURDA_STAGES - 1)


LR_SCHEDULES = {
    "constant": lambda lr, lr_min, fraction: lr,
    "cosine": lambda lr, lr_min, fraction: lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0))),
    "burda": lambda lr, lr_min, fraction: lr * 10 ** (-burda_stage(fraction) / 7),
}



def check(cfg: RunConfig) -> None:
    """Every name in `cfg` is known and the combination makes sense: each part checks itself
    against the rest of the model (the shapes are checked by building it, `check_model`)."""
    m = cfg.model
    for part in m.parts():
        if not userparts.is_reference(part.name):  # a user's part was checked against its slot where it was loaded
            pick(PARTS[part.slot], f"model.{part.slot}.name", part.name)
        part.check(m)
    pick(INITS, "model.init", m.init)
    if m.skeleton.used and m.init != "pytorch":
        raise AelabError(f"model.init: a student's skeleton starts its layers as its own code does, not {m.init!r}")
    pick(DATASETS, "data.name", cfg.data.name)
    pick(BINARIZERS, "data.binarize", cfg.data.binarize)
    pick(OPTIMIZERS, "train.optimizer", cfg.train.optimizer)
    pick(LR_SCHEDULES, "train.lr_schedule", cfg.train.lr_schedule)
    pick(hardware.DEVICES, "train.device", cfg.train.device)
    pick(hardware.PRECISIONS, "train.precision", cfg.train.precision)
    pick(hardware.PRECISIONS, "train.eval_precision", cfg.train.eval_precision)
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
    hardware.device(cfg.train.device)  # 'cuda' or 'mps' where torch sees none: refused here
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
    if m.skeleton.used:  # the student's own classes and Loss (course/model.py)
        return course.build(m.skeleton, image_shape, num_classes, m.latent_dim, cfg.train.epochs)
    latent = built(m.latent, Latent, m.latent.build(m.latent_dim))
    condition = m.condition.build(num_classes)
    encoder, decoder = m.network.build(image_shape, *latent.widths(m.latent_dim), condition.dim)
    built(m.network, Encoder, encoder, "encoder")
    built(m.network, Decoder, decoder, "decoder")
    # the prior part is p(z), or a hierarchy's top layer p(z2), which the latent wraps
    prior = built(m.prior, Prior, m.prior.build(num_classes, latent.prior_dim(m.latent_dim)))
    model = Autoencoder(Parts(encoder=encoder, decoder=decoder, latent=latent, likelihood=m.likelihood.build(),
                              condition=condition, corruption=m.corruption.build(), channel=m.channel.build(),
                              objective=built(m.objective, Objective, m.objective.build(image_shape)),
                              prior=latent.around(prior)), m.latent_dim, image_shape)
    INITS[m.init](model)
    return model


def built(settings, base: type, part, what: str = ""):
    """`part`, which `settings.build` gave, held to its slot's type (parts/slots.py): a user's
    part that builds something else is named in one line."""
    if not isinstance(part, base):
        given = f"{what} " if what else ""
        who = settings.name if ":" in settings.name else settings.title  # a user's part: its file and class
        raise AelabError(f"model.{settings.slot}: {who}.build gave a {given}{type(part).__name__}, "
                         f"not an aelab.parts.{base.__name__} (see docs/own-model.md)")
    return part


def check_model(cfg: RunConfig, data: ImageData) -> None:
    """Build the model of `cfg` for `data` on the meta device (shapes only: no memory, no
    random numbers drawn) and pass two images through its networks: a code map that does
    not fit the image, convolutions that shrink it to nothing, or a network of the user's that
    gives the wrong shape fail here, before anything is written."""
    check_shapes(cfg, data.image_shape, data.num_classes)


def check_shapes(cfg: RunConfig, shape: tuple[int, ...], num_classes: int) -> None:
    """check_model for images of `shape` and `num_classes` classes."""
    m = cfg.model
    if m.skeleton.used:  # the student's classes are built and run once on the CPU: their errors, here
        build_model(cfg, shape, num_classes)
        return
    with torch.device("meta"):
        model = build_model(cfg, shape, num_classes)
        c = torch.zeros(2, model.condition.dim) if model.condition.dim else None
        out, into = model.latent.widths(m.latent_dim)
        expected = {"encoder": (2, out), "decoder": (2, *shape)}
        for name, inputs in (("encoder", torch.zeros(2, *shape)), ("decoder", torch.zeros(2, into))):
            try:
                got = tuple(getattr(model, name)(inputs, c).shape)
            except AelabError:
                raise
            except Exception as e:  # a network of the user's that cannot take its input: one line
                raise AelabError(f"model.network: {m.network.title}'s {name} raised on input {tuple(inputs.shape)}: "
                                 f"{type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
            if got != expected[name]:
                raise AelabError(f"model.network: {m.network.title}'s {name} gives {got} for input "
                                 f"{tuple(inputs.shape)}, not {expected[name]}")


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    """The optimizer, fused (one kernel per step for all parameters) where this torch and
    device support it, else torch's default implementation."""
    params = list(params)
    make = OPTIMIZERS[cfg.train.optimizer]
    try:
        return make(params, lr=cfg.train.lr, eps=cfg.train.adam_eps, weight_decay=cfg.train.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # fused unsupported here (older torch, device, dtype)
        return make(params, lr=cfg.train.lr, eps=cfg.train.adam_eps, weight_decay=cfg.train.weight_decay)


