"""Frozen, typed run configuration: TOML in, dotted overrides, TOML out.

A run config is three sections, each a frozen dataclass. Loading checks every key against
the field names and every value against the field's type; names that select behaviour
(`model.kind`, `model.likelihood`, ...) are checked by the registry, the one place where
strings become objects.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AelabError


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # mnist | fashion-mnist | folder
    root: str = ""  # directory of IDX files ("" = the built-in source of `name`), or the image folder
    test_root: str = ""  # folder: a second folder as the test split, or ...
    test_fraction: float = 0.0  # folder: ... this fraction of `root` held out (a fixed random choice)
    image_size: int = 64  # folder: images resized and centre-cropped to image_size x image_size
    binarize: str = "none"  # none (grey levels in [0,1]) | static (> 0.5) | dynamic (Bernoulli draw per epoch)
    val_size: int = 5000  # held out from the END of the training set, for model selection
    train_size: int = 0  # use only the first N training images (0 = all that remain)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "vae"  # ae | vae | cvae
    network: str = "mlp"
    latent_dim: int = 20
    latent_channels: int = 0  # cnn: > 0 makes the code a map of this many channels (latent_dim = channels x h x w)
    hidden: tuple[int, ...] = (400,)
    activation: str = "relu"
    likelihood: str = "bernoulli"  # bernoulli (BCE) | gaussian (MSE) | laplace (L1)
    obs_scale: float = 0.0  # gaussian std / laplace scale; 0 = the conventional one (see likelihoods.py)
    learn_scale: bool = False  # learn one shared observation scale (gaussian, laplace)
    recon_reduction: str = "sum"  # sum over pixels (a likelihood) | mean over pixels (the common scaling slip)
    beta: float = 1.0  # weight of KL(q(z|x) || N(0, I))
    kl_warmup_epochs: float = 0.0  # KL weight rises linearly from 0 to beta over this many epochs
    input_noise: float = 0.0  # denoising: std of Gaussian noise added to the encoder's input
    channel: str = "none"  # none | awgn (the code power-normalised, Gaussian noise added while training)
    channel_sigma: float = 0.0  # awgn: the noise's standard deviation against a code of mean square 1
    iw_samples: int = 1  # > 1: train on the importance-weighted bound with K samples (IWAE)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # with a time budget, the most epochs (0 = no limit but the budget)
    time_budget_min: float = 0.0  # > 0: stop when this many minutes of training steps are spent (see train.py)
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (from lr down to lr_min over the epochs or the time budget)
    lr_min: float = 0.0
    weight_decay: float = 0.0  # L2 penalty on the weights (Adam's weight_decay)
    optimizer: str = "adam"
    seed: int = 0
    device: str = "auto"  # auto (CUDA, else MPS, else CPU) | cpu | cuda | mps
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    precision: str = "auto"  # auto (bfloat16 where the hardware has it, else float32) | float32 | bfloat16
    eval_batch_size: int = 1000
    log_every: int = 50  # steps between progress-bar refreshes (each one syncs)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS: dict[str, type] = typing.get_type_hints(RunConfig)  # section name -> its dataclass

_POSITIVE = {
    "data.val_size": 0, "data.train_size": 0, "data.test_fraction": 0.0, "data.image_size": 4, "model.latent_dim": 1, "model.latent_channels": 0, "model.beta": 0.0,
    "model.kl_warmup_epochs": 0.0, "model.input_noise": 0.0, "model.channel_sigma": 0.0, "model.obs_scale": 0.0, "model.iw_samples": 1,
    "train.epochs": 0, "train.time_budget_min": 0.0, "train.batch_size": 1, "train.lr": 0.0, "train.lr_min": 0.0, "train.weight_decay": 0.0,
    "train.threads": 0, "train.eval_batch_size": 1, "train.log_every": 1,
}
_STRICTLY_POSITIVE = {"train.lr"}


def valid_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _coerce(key: str, value: object, tp: object, where: str) -> object:
    """Check `value` against the annotation `tp`; return it in the field's own type."""
    def bad(expected: str) -> AelabError:
        return AelabError(f"{where}: {key} must be {expected}, got {value!r}")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if typing.get_origin(tp) is tuple:
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value
        ):
            raise bad("a list of positive integers")
        return tuple(value)
    raise TypeError(f"unsupported config type {tp!r} for {key}")


def _check_range(key: str, value: object, where: str) -> None:
    if key in _POSITIVE and value < _POSITIVE[key]:  # type: ignore[operator]
        raise AelabError(f"{where}: {key} must be at least {_POSITIVE[key]}, got {value!r}")
    if key in _STRICTLY_POSITIVE and value <= 0:  # type: ignore[operator]
        raise AelabError(f"{where}: {key} must be greater than 0, got {value!r}")


def from_dict(tree: dict, where: str, base: RunConfig | None = None) -> RunConfig:
    """Build a RunConfig from nested dicts, starting from `base` (defaults when None)."""
    base = base or RunConfig()
    sections = {}
    for sname, scls in SECTIONS.items():
        values = tree.get(sname, {})
        if not isinstance(values, dict):
            raise AelabError(f"{where}: [{sname}] must be a table, got {values!r}")
        sections[sname] = _update(getattr(base, sname), sname, values, where)
    for sname in tree:
        if sname not in SECTIONS:
            raise AelabError(f"{where}: unknown key '{sname}'; valid keys: {', '.join(valid_keys())}")
    return RunConfig(**sections)


def _update(section: object, sname: str, values: dict, where: str) -> object:
    types = typing.get_type_hints(type(section))
    changes = {}
    for name, value in values.items():
        key = f"{sname}.{name}"
        if name not in types:
            raise AelabError(f"{where}: unknown key '{key}'; valid keys: {', '.join(valid_keys())}")
        changes[name] = _coerce(key, value, types[name], where)
        _check_range(key, changes[name], where)
    return dataclasses.replace(section, **changes)


def parse_override(text: str) -> tuple[str, object]:
    """'model.hidden=[512, 256]' -> ('model.hidden', (512, 256)). Bare words are strings."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise AelabError(f"--set {text!r}: expected KEY=VALUE, e.g. model.latent_dim=2")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word such as `vae` or a path
    return key, value


def with_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    tree: dict[str, dict] = {}
    for text in overrides:
        key, value = parse_override(text)
        sname, dot, name = key.partition(".")
        if not dot or sname not in SECTIONS:
            raise AelabError(f"--set: unknown key '{key}'; valid keys: {', '.join(valid_keys())}")
        tree.setdefault(sname, {})[name] = value
    return from_dict(tree, "--set", base=cfg)


def load(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AelabError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AelabError(f"{path}: cannot read config: {e}") from None
    return loads(text, str(path), overrides)


def loads(text: str, where: str, overrides: list[str] | None = None) -> RunConfig:
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AelabError(f"{where}: not valid TOML: {e}") from None
    return with_overrides(from_dict(tree, where), overrides or [])


def as_dict(cfg: RunConfig) -> dict[str, dict[str, object]]:
    return {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS}


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps(cfg: RunConfig) -> str:
    """The resolved config as TOML; `loads(dumps(cfg))` gives back `cfg`."""
    lines = []
    for sname, values in as_dict(cfg).items():
        lines.append(f"[{sname}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def diff(a: RunConfig, b: RunConfig, sections: tuple[str, ...] = tuple(SECTIONS)) -> list[str]:
    """Keys whose values differ, as 'key: a vs b'."""
    da, db = as_dict(a), as_dict(b)
    return [
        f"{s}.{k}: {da[s][k]!r} vs {db[s][k]!r}"
        for s in sections for k in da[s] if da[s][k] != db[s][k]
    ]
