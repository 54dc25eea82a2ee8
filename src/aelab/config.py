"""Frozen, typed run configuration: TOML in, dotted overrides, TOML out.

A run config is three sections, each a frozen dataclass. The model's section holds one table
per part, each chosen by name and configured by that name's own settings class:

    [model]
    latent_dim = 20
    [model.objective]
    name = "iwae"       # parts.catalog.PARTS["objective"]: elbo | iwae
    samples = 50        # a field of IWAESettings

Loading checks every key against the field names (of the part's settings class, for a part)
and every value against the field's type and range; a part whose name changes starts from
its new settings class's defaults. Other names that select behaviour (`data.name`,
`train.optimizer`, ...) are checked by the registry, the one place where strings become objects.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from aelab.course.model import SkeletonSettings
from aelab import shipped
from aelab.errors import AelabError
from aelab.language import N_, join
from aelab import userparts
from aelab.parts.catalog import PARTS
from aelab.parts.conditions import NoConditionSettings
from aelab.parts.inits import INIT_WORDS, INITS
from aelab.parts.latents import GaussianLatentSettings
from aelab.parts.likelihoods import BernoulliSettings
from aelab.parts.networks import MLPSettings
from aelab.parts.noise import NoChannelSettings, NoCorruptionSettings
from aelab.parts.objectives import ELBOSettings
from aelab.parts.priors import StandardPriorSettings
from aelab.settings import PartSettings, bounded, check_range, choice, coerce

CONFIG_DIR = Path(__file__).parent / "configs"
SKELETON_SLOTS = ("latent", "condition")  # the parts a student's skeleton still has: its type  # the shipped configs (also `configs/` in the repository)


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"  # mnist | fashion-mnist | folder
    root: str = ""  # directory of IDX files ("" = the built-in source of `name`), or the image folder
    test_root: str = ""  # folder: a second folder as the test split, or ...
    test_fraction: float = bounded(0.0, at_least=0.0)  # folder: ... this fraction of `root` held out (a fixed random choice)
    image_size: int = bounded(64, at_least=4)  # folder: images resized and centre-cropped to image_size x image_size
    binarize: str = "none"  # none (grey levels in [0,1]) | static (> 0.5) | dynamic (Bernoulli draw per epoch)
    val_size: int = bounded(5000, at_least=0)  # held out from the END of the training set, for model selection
    train_size: int = bounded(0, at_least=0)  # use only the first N training images (0 = all that remain)


@dataclass(frozen=True)
class ModelConfig:
    """The size of the code, and the parts, in the order the model is built from them."""

    latent_dim: int = bounded(20, at_least=1)  # numbers in the code z
    # how the fully connected layers start: pytorch (torch's default) | glorot (Glorot & Bengio
    # 2010, biases zero; made for tanh networks): parts/inits.py
    init: str = choice("pytorch", INITS)
    network: PartSettings = MLPSettings()
    latent: PartSettings = GaussianLatentSettings()
    prior: PartSettings = StandardPriorSettings()
    likelihood: PartSettings = BernoulliSettings()
    objective: PartSettings = ELBOSettings()
    corruption: PartSettings = NoCorruptionSettings()
    condition: PartSettings = NoConditionSettings()
    channel: PartSettings = NoChannelSettings()
    # the course's skeleton as a student wrote it (course/model.py): when its file is set, the
    # student's classes are the networks and sampling, their Loss the objective, and the latent
    # and condition follow its type
    skeleton: SkeletonSettings = SkeletonSettings()

    def parts(self) -> list[PartSettings]:
        """The parts the model is built from: with a student's skeleton, its latent and
        condition alone (their classes and Loss are the networks, likelihood and objective)."""
        used = SKELETON_SLOTS if self.skeleton.used else PARTS
        return [getattr(self, f.name) for f in dataclasses.fields(self) if f.name in used]

    @property
    def short(self) -> str:
        """What the parts make: AE, VAE, CAE or CVAE."""
        return self.condition.prefix + self.latent.short

    def describe(self) -> str:
        """'VAE, mlp 400, latent 20, bernoulli, IWAE objective, K = 50': what the parts make,
        then each part in its own words (absent parts say nothing)."""
        if self.skeleton.used:
            return join(", ", [self.short, self.skeleton.describe(), N_("latent {n}", n=self.latent_dim)])
        words = [self.short, self.network.describe(), N_("latent {n}", n=self.latent_dim)]
        words += [p.describe() for p in self.parts() if p.slot != "network"]
        return join(", ", words + ([INIT_WORDS[self.init]] if self.init in INIT_WORDS else []))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = bounded(10, at_least=0)  # with a time budget, the most epochs (0 = no limit but the budget)
    time_budget_min: float = bounded(0.0, at_least=0.0)  # > 0: stop when this many minutes of training steps are spent (see train.py)
    batch_size: int = bounded(128, at_least=1)
    lr: float = bounded(1e-3, above=0.0)
    # constant | cosine (from lr down to lr_min over the epochs or the time budget) | burda (Burda et al. 2016:
    # 8 stages, stage i of 3^i of the 3,280 parts of training at lr * 10^(-i/7); lr_min unused)
    lr_schedule: str = "constant"
    lr_min: float = bounded(0.0, at_least=0.0)
    weight_decay: float = bounded(0.0, at_least=0.0)  # L2 penalty on the weights (Adam's weight_decay)
    optimizer: str = "adam"
    adam_eps: float = bounded(1e-8, above=0.0)  # Adam's epsilon (Burda et al. 2016 use 1e-4)
    seed: int = 0
    device: str = "auto"  # auto (CUDA, else MPS, else CPU) | cpu | cuda | mps
    threads: int = bounded(0, at_least=0)  # torch intra-op threads; 0 = torch's default
    precision: str = "auto"  # auto (bfloat16 where the hardware has it, else float32) | float32 | bfloat16
    eval_batch_size: int = bounded(1000, at_least=1)  # the most images per evaluation or validation batch; fewer for large images (hardware.eval_batch)
    eval_precision: str = "auto"  # auto (bfloat16 where it changes no printed digit and the hardware has it) | float32 | bfloat16
    log_every: int = bounded(50, at_least=1)  # steps between progress-bar refreshes (each one syncs)
    # also write last.pt inside an epoch after this many minutes of training steps (at the next
    # progress sync); 0 = at epoch ends only
    checkpoint_every_min: float = bounded(5.0, at_least=0.0)
    # write TensorBoard event files under RUN/tensorboard: the training loss every log_every steps,
    # validation, schedule and images per epoch, settings and test metrics (training/tensorboard.py)
    tensorboard: bool = False
    # on CUDA, one process: replay each full batch's step (forward, backward, optimizer) as one
    # CUDA graph, where the objective's schedule stands still (training/graphed.py)
    cuda_graphs: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SECTIONS: dict[str, type] = typing.get_type_hints(RunConfig)  # section name -> its dataclass

# Keys of the flat model section before parts had their own tables: each names its new home.
MOVED = {
    "kind": "model.latent.name ('point' for an AE, 'gaussian' for a VAE), and model.condition.name = 'label' for a CVAE",
    "hidden": "model.network.hidden",
    "activation": "model.network.activation",
    "latent_channels": "model.network.latent_channels (with model.network.name = 'cnn')",
    "obs_scale": "model.likelihood.scale",
    "learn_scale": "model.likelihood.learn_scale",
    "recon_reduction": "model.objective.recon_reduction",
    "beta": "model.objective.beta",
    "kl_warmup_epochs": "model.objective.kl_warmup_epochs",
    "input_noise": "model.corruption.name = 'gaussian' with model.corruption.sigma",
    "channel_sigma": "model.channel.sigma (with model.channel.name = 'awgn')",
    "iw_samples": "model.objective.name = 'iwae' with model.objective.samples",
}


def flat(cfg: object) -> dict[str, object]:
    """{"model.network.name": "mlp", "model.network.hidden": (400,), ...} of a config or a section:
    `as_dict`'s tables, their keys joined by dots."""
    def walk(tree: dict, prefix: str):
        for k, v in tree.items():
            yield from walk(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    return dict(walk(as_dict(cfg), ""))


def flat_in_use(cfg: RunConfig) -> dict[str, object]:
    """`flat(cfg)` without the settings of parts its model is not built from (a skeleton's)."""
    used = {p.slot for p in cfg.model.parts()}
    return {k: v for k, v in flat(cfg).items()
            if not (k.startswith("model.") and k.split(".")[1] in PARTS and k.split(".")[1] not in used)
            and (cfg.model.skeleton.used or not k.startswith("model.skeleton."))}


def short_key(key: str) -> str:
    """How tables and run names show a key: its last word, or the part for a part's name
    ('train.lr' -> 'lr', 'model.latent.name' -> 'latent')."""
    *path, last = key.split(".")
    return path[-1] if last == "name" and len(path) > 1 else last


def valid_keys(cfg: RunConfig | None = None) -> list[str]:
    """The keys of `cfg` (the defaults when None): its parts' own settings, as chosen."""
    return list(flat(cfg or RunConfig()))


def from_dict(tree: dict, where: str, base: RunConfig | None = None, folder: Path | None = None) -> RunConfig:
    """Build a RunConfig from nested dicts, starting from `base` (defaults when None). A user's
    part named by a relative file path is found from `folder` (else the working folder)."""
    base = base or RunConfig()
    for sname in tree:
        if sname not in SECTIONS:
            raise AelabError(f"{where}: unknown key '{sname}'; valid keys: {', '.join(valid_keys(base))}")
    sections = {}
    for sname in SECTIONS:
        values = tree.get(sname, {})
        if not isinstance(values, dict):
            raise AelabError(f"{where}: [{sname}] must be a table, got {values!r}")
        sections[sname] = _update(getattr(base, sname), sname, values, where, folder)
    return RunConfig(**{**sections, "model": _skeleton_parts(sections["model"])})


def _skeleton_parts(model: ModelConfig) -> ModelConfig:
    """A student's skeleton decides the latent and the condition by its type (AE, VAE, CVAE)."""
    if not model.skeleton.used:
        return model
    latent = PARTS["latent"]["point" if model.skeleton.type == "AE" else "gaussian"]
    condition = PARTS["condition"]["label" if model.skeleton.type == "CVAE" else "none"]
    return dataclasses.replace(model, latent=model.latent if type(model.latent) is latent else latent(),
                               condition=condition())


def _update(section: object, prefix: str, values: dict, where: str, folder: Path | None = None) -> object:
    types = typing.get_type_hints(type(section))
    fields = {f.name: f for f in dataclasses.fields(section)}
    changes = {}
    for name, value in values.items():
        key = f"{prefix}.{name}"
        if name not in fields:
            if prefix == "model" and name in MOVED:
                raise AelabError(f"{where}: {key} has moved; use {MOVED[name]}")
            known = ", ".join(f"{prefix}.{k}" for k in ["name"] * isinstance(section, PartSettings) + list(fields))
            raise AelabError(f"{where}: unknown key '{key}'; valid keys: {known}")
        if types[name] is PartSettings:
            changes[name] = _part(getattr(section, name), key, value, where, folder)
        elif types[name] is SkeletonSettings:
            if not isinstance(value, dict):
                raise AelabError(f"{where}: {key} is a table (file, loss, type, hidden_size)")
            changes[name] = _update(getattr(section, name), key, value, where, folder).resolved(folder)
        else:
            changes[name] = coerce(key, value, types[name], where)
            check_range(key, fields[name], changes[name], where)
    return dataclasses.replace(section, **changes)


def _part(current: PartSettings, key: str, values: object, where: str, folder: Path | None) -> PartSettings:
    """A part's table: its name (kept when not given) and that name's settings; a new name
    starts from its own defaults. A name with a colon is a class of the user's (userparts.py)."""
    table = PARTS[current.slot]
    if not isinstance(values, dict):
        raise AelabError(f"{where}: {key} is a table of the part's name and settings; "
                         f"use {key}.name = {values!r} (one of {', '.join(table)})")
    values = dict(values)
    name = values.pop("name", current.name)
    if userparts.is_reference(name):
        try:
            cls = userparts.resolve(current.slot, name, folder)
        except AelabError as e:
            raise AelabError(f"{where}: {e}") from None
    elif not isinstance(name, str) or name not in table:
        raise AelabError(f"{where}: {key}.name: unknown {name!r}; choose from {', '.join(table)}, "
                         "or a class of your own: 'path/to/file.py:Class'")
    else:
        cls = table[name]
    return _update(current if type(current) is cls else cls(), key, values, where, folder)


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


def with_overrides(cfg: RunConfig, overrides: list[str], folder: Path | None = None) -> RunConfig:
    """Apply KEY=VALUE overrides, all at once: within one call a part's new name applies
    before the settings given with it, whatever their order. A user's part named by a relative
    path is found from `folder` (else the working folder, as for `--set` on the command line)."""
    tree: dict[str, dict] = {}
    for text in overrides:
        key, value = parse_override(text)
        *path, name = key.split(".")
        if not path or path[0] not in SECTIONS:
            raise AelabError(f"--set: unknown key '{key}'; valid keys: {', '.join(valid_keys(cfg))}")
        node = tree
        for step in path:
            node = node.setdefault(step, {})
            if not isinstance(node, dict):
                raise AelabError(f"--set: '{key}' and a value for '{step}' at once")
        if isinstance(node.get(name), dict):
            raise AelabError(f"--set: '{key}' and settings under it at once")
        node[name] = value
    return from_dict(tree, "--set", base=cfg, folder=folder)


def upgrade_model(model: dict) -> dict:
    """A [model] table as run directories of earlier versions stored it (one flat table:
    kind, network, hidden, input_noise, iw_samples, ...), in today's form, so that those runs
    still open, evaluate, report and resume. A table already in today's form is returned as is."""
    today = {k for k, t in typing.get_type_hints(ModelConfig).items() if t is str}  # e.g. init
    if not any(k in MOVED or (isinstance(v, str) and k not in today) for k, v in model.items()):
        return model
    old = dict(model)
    kind = old.pop("kind", "vae")
    new: dict[str, object] = {k: old.pop(k) for k in ("latent_dim",) if k in old}
    new["network"] = {"name": old.pop("network", "mlp"), **{k: old.pop(k) for k in ("hidden", "activation") if k in old}}
    channels = old.pop("latent_channels", 0)
    if channels:
        new["network"]["latent_channels"] = channels  # type: ignore[index]
    new["latent"] = {"name": "point" if kind == "ae" else "gaussian"}
    new["likelihood"] = {"name": old.pop("likelihood", "bernoulli")}
    scale, learn = old.pop("obs_scale", 0.0), old.pop("learn_scale", False)
    if new["likelihood"]["name"] != "bernoulli":  # type: ignore[index]
        new["likelihood"].update(scale=scale, learn_scale=learn)  # type: ignore[union-attr]
    samples = old.pop("iw_samples", 1)
    elbo = {k: old.pop(k) for k in ("beta", "kl_warmup_epochs", "recon_reduction") if k in old}
    if kind == "ae":  # an AE has no KL: these had no effect
        elbo = {k: v for k, v in elbo.items() if k == "recon_reduction"}
    new["objective"] = {"name": "iwae", "samples": samples} if samples > 1 else {"name": "elbo", **elbo}
    noise = old.pop("input_noise", 0.0)
    new["corruption"] = {"name": "gaussian", "sigma": noise} if noise > 0 else {"name": "none"}
    new["condition"] = {"name": "label" if kind == "cvae" else "none"}
    channel, sigma = old.pop("channel", "none"), old.pop("channel_sigma", 0.0)
    new["channel"] = {"name": channel, **({"sigma": sigma} if channel != "none" else {})}
    return {**new, **old}  # anything left is refused by the loader as an unknown key


def load(path: str | Path, overrides: list[str] | None = None, stored: bool = False) -> RunConfig:
    """The config file `path`, or a shipped config of that name (`vae_mnist`: shipped.py)."""
    path = shipped.find("config", path) if not stored else Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AelabError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AelabError(f"{path}: cannot read config: {e}") from None
    return loads(text, str(path), overrides, stored, folder=path.parent)


def loads(text: str, where: str, overrides: list[str] | None = None, stored: bool = False,
          folder: Path | None = None) -> RunConfig:
    """A config from TOML text; `stored`: one a run directory or checkpoint holds, which may
    be in an earlier version's form (`upgrade_model`). A config a user writes is taken only in
    today's form: an old key is refused, naming its new place."""
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AelabError(f"{where}: not valid TOML: {e}") from None
    if stored and isinstance(tree.get("model"), dict):
        tree["model"] = upgrade_model(tree["model"])
    return with_overrides(from_dict(tree, where, folder=folder), overrides or [])


def as_dict(cfg: object) -> dict[str, object]:
    """Nested dicts of a config, each part's table with its name first."""
    out: dict[str, object] = {"name": cfg.name} if isinstance(cfg, PartSettings) else {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = as_dict(value) if dataclasses.is_dataclass(value) else value
    return out


def toml_value(value: object) -> str:
    """A value as TOML writes it on one line (for `--set` overrides): tomli-w's for a scalar,
    an array inline."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def dumps(cfg: RunConfig) -> str:
    """The resolved config as TOML (tomli-w); `loads(dumps(cfg))` gives back `cfg`."""
    return tomli_w.dumps(as_dict(cfg))


def diff(a: RunConfig, b: RunConfig, sections: tuple[str, ...] = tuple(SECTIONS)) -> list[str]:
    """Keys whose values differ, as 'key: a vs b' (a part's other name counts once, as its name)."""
    fa, fb = flat(a), flat(b)
    keys = [k for k in dict.fromkeys([*fa, *fb]) if k.split(".")[0] in sections]
    renamed = {k.rpartition(".")[0] for k in keys if k.endswith(".name") and fa.get(k) != fb.get(k)}
    return [f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in keys
            if fa.get(k) != fb.get(k) and (k.endswith(".name") or k.rpartition(".")[0] not in renamed)]
