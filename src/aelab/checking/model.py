"""The checks every part is held to, built-in or a user's: in some kind of model it builds (on
the meta device too), gives the shapes the model interface promises, finite losses, a gradient
on every parameter; its loss falls on a fixed batch; it survives a save and load; and every
setting moved off its default changes the model or its loss. The test suite's registry loop
(tests/test_models.py) and `aelab check` run these same functions (run.py).

Each check takes what it looks at and returns a line saying what held, or raises Failed with
a line saying what did not (and, in maths.py, the likely mistake).
"""

from __future__ import annotations

import dataclasses
import io

import torch

from aelab import config, registry
from aelab.config import RunConfig
from aelab.data.splits import Batch
from aelab.errors import AelabError
from aelab.parts.autoencoder import Autoencoder
from aelab.settings import PartSettings

# the kinds of model a part is tried in, in order: as the base has it, an AE, a VAE, a CVAE
KINDS = ({}, {"latent": {"name": "point"}}, {"latent": {"name": "gaussian"}},
         {"latent": {"name": "gaussian"}, "condition": {"name": "label"}})


class NotApplicable(str):
    """What a check returns where it does not apply to the part (a deterministic code has no KL)."""


class Failed(AssertionError):
    """A check that did not hold: what was seen, and the likely mistake where one is recognised."""

    def __init__(self, what: str, mistake: str = ""):
        super().__init__(what + (f" (likely: {mistake})" if mistake else ""))
        self.what, self.mistake = what, mistake


def moved(value, f: dataclasses.Field):
    """A value of field `f` off `value`, within its range: the next choice, the other truth
    value, a quarter more, one more, each width one more (less, where more is past its top);
    None for a free string (nothing to move it to)."""
    if "choices" in f.metadata:
        names = list(f.metadata["choices"])
        return names[(names.index(value) + 1) % len(names)]
    if isinstance(value, bool):
        return not value
    top = f.metadata.get("at_most")
    if isinstance(value, (int, float)):
        step = 0.25 if isinstance(value, float) else 1
        return value - step if top is not None and value + step > top else value + step
    if isinstance(value, tuple):
        return tuple(v + 1 for v in value) if value else value
    return None


def beside_its_needs(cls: type[PartSettings], key: str) -> PartSettings:
    """`cls`'s defaults, with the setting that `key` needs to act (its field's `needs`) moved."""
    fields = {x.name: x for x in dataclasses.fields(cls)}
    needs = fields[key].metadata.get("needs")
    default = cls()
    return dataclasses.replace(default, **{needs: moved(getattr(default, needs), fields[needs])}) if needs else default


def moved_settings(settings: PartSettings) -> PartSettings:
    """`settings` with every setting that can be moved moved off its value."""
    changes = {f.name: moved(getattr(settings, f.name), f) for f in dataclasses.fields(settings)}
    return dataclasses.replace(settings, **{k: v for k, v in changes.items() if v is not None})


def with_part(base: RunConfig, slot: str, settings: PartSettings, kind: dict | None = None) -> RunConfig:
    """`base` made the `kind` of model (KINDS) with `settings` as its `slot` part."""
    tree = {k: v for k, v in (kind or {}).items() if k != slot}
    cfg = config.from_dict({"model": tree}, "check", base=base) if tree else base
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **{slot: settings}))


def kinds(base: RunConfig, slot: str, settings: PartSettings) -> list[RunConfig]:
    """Every kind of model (KINDS) whose parts' own checks accept `settings` as its `slot` part
    (each kind once); empty when none does."""
    found: list[RunConfig] = []
    for kind in KINDS:
        cfg = with_part(base, slot, settings, kind)
        try:
            registry.check(cfg)
        except AelabError:
            continue
        if cfg not in found:
            found.append(cfg)
    return found


def build(cfg: RunConfig, shape: tuple[int, ...], classes: int, seed: int = 0) -> Autoencoder:
    torch.manual_seed(seed)
    return registry.build_model(cfg, shape, classes)


def builds_on_meta(cfg: RunConfig, shape: tuple[int, ...], classes: int) -> str:
    """Built on the meta device (shapes only) and two images passed through its networks, as
    `aelab train` checks a config before writing anything."""
    try:
        registry.check_shapes(cfg, shape, classes)
    except AelabError as e:
        raise Failed(str(e)) from None
    except Exception as e:
        raise Failed(f"does not build on the meta device ({type(e).__name__}: {e})",
                     "the build makes tensors on a fixed device or reads their values") from None
    return "builds, and its networks give the right shapes, on the meta device (as aelab train checks first)"


def shapes(model: Autoencoder, batch: Batch) -> str:
    """encode, decode, reconstruct, sample and loss give what the model interface promises, all finite."""
    n, d = len(batch.x), model.latent_dim
    q = model.encode(batch.x, batch.y)
    _expect(tuple(q.mean.shape) == (n, d), f"encode gave codes of shape {tuple(q.mean.shape)}, not ({n}, {d})")
    out = model.decode(q.mean, batch.y)
    _expect(out.shape == batch.x.shape, f"decode gave {tuple(out.shape)}, not the images' {tuple(batch.x.shape)}")
    rec = model.reconstruct(batch.x, batch.y)
    _expect(rec.shape == batch.x.shape and bool(((rec >= 0) & (rec <= 1)).all()),
            "reconstructions are not images in [0, 1] of the input's shape")
    s = model.sample(10)
    _expect(tuple(s.shape) == (10, *batch.x.shape[1:]), f"sample(10) gave {tuple(s.shape)}")
    losses = model.loss(batch)
    _expect("loss" in losses and losses["loss"].shape == (), "loss(batch) has no scalar 'loss'")
    bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
    _expect(not bad, f"loss parts not finite: {', '.join(bad)}")
    _expect(("kl" in losses) == q.stochastic == ("neg_elbo" in losses),
            "a stochastic latent's loss reports kl and neg_elbo, and a deterministic one's neither")
    return f"encode (B, {d}), decode and reconstruct {tuple(batch.x.shape[1:])}, sample, loss: finite"


def gradients(model: Autoencoder, batch: Batch) -> str:
    """Every parameter is in the graph and gets a gradient, at the latest after one step (a
    residual branch whose last layer starts at zero passes none to its inner layers until then)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model.loss(batch, progress=1.0)["loss"].backward()
        none = [n for n, p in model.named_parameters() if p.grad is None]
        _expect(not none, f"no gradient reaches {', '.join(none[:3])}", "a parameter the loss never uses")
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
        _expect(not bad, f"gradient not finite at {', '.join(bad[:3])}")
        opt.step()
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    _expect(not zero, f"zero gradient at {', '.join(zero[:3])}", "a parameter the loss never uses")
    return f"a finite, non-zero gradient on each of {len(list(model.parameters()))} parameter tensors"


def recon_floor(model: Autoencoder, batch: Batch) -> float:
    """The reconstruction term of a perfect decoder, whose output's mean is the image itself:
    the part of -log p(x|z) no training removes (a Gaussian's normaliser, grey pixels' entropy)."""
    with torch.no_grad():
        perfect = torch.logit(batch.x.clamp(1e-4, 1 - 1e-4))
        try:
            return -model.likelihood.log_prob(perfect, batch.x).mean().item()
        except Exception:  # a likelihood of the user's that reads its output otherwise
            return 0.0


def loss_falls(model: Autoencoder, batch: Batch, steps: int = 40) -> str:
    """`steps` Adam steps on one batch: the objective falls, and the reconstruction term's
    distance to a perfect decoder's (recon_floor) by a tenth (an objective may have a floor it
    cannot pass, such as free bits' lambda per dimension)."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    floor = recon_floor(model, batch)

    def measured():  # the same noise each time, so only the weights differ
        with torch.random.fork_rng():
            torch.manual_seed(7)
            out = model.loss(batch, progress=5.0)
            return out["loss"].item(), out.get("recon", out["loss"]).item()

    torch.manual_seed(1)
    loss, recon = measured()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(batch, progress=5.0)["loss"].backward()
        opt.step()
    loss_after, recon_after = measured()
    _expect(loss_after < loss and recon_after - floor < 0.9 * (recon - floor),
            f"after {steps} steps on one batch the loss went {loss:.1f} -> {loss_after:.1f} and the "
            f"reconstruction {recon:.1f} -> {recon_after:.1f} (a perfect decoder's: {floor:.1f})")
    return f"loss {loss:.1f} -> {loss_after:.1f} in {steps} steps on one batch"


def warmed(model: Autoencoder, batch: Batch, steps: int = 20) -> Autoencoder:
    """`model` after a few Adam steps on `batch` (fixed seed), so that its KL is well away
    from the near-zero of initialisation and a wrongly scaled term shows."""
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        for _ in range(steps):
            opt.zero_grad()
            model.loss(batch, progress=5.0)["loss"].backward()
            opt.step()
    return model


def round_trip(cfg: RunConfig, batch: Batch, shape: tuple[int, ...], classes: int) -> str:
    """Weights saved and loaded into a model built from another seed give identical outputs."""
    model, fresh = build(cfg, shape, classes, seed=3), build(cfg, shape, classes, seed=4)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval(), fresh.eval()
    z = torch.randn(5, cfg.model.latent_dim)
    y = None if batch.y is None else batch.y[:5]
    same = torch.equal(model.decode(z, y), fresh.decode(z, y)) and torch.equal(
        model.encode(batch.x, batch.y).mean, fresh.encode(batch.x, batch.y).mean)
    _expect(same, "a model loaded from saved weights gives other outputs",
            "state kept outside parameters and buffers (a plain tensor attribute)")
    return "saved and loaded weights give identical encodings and decodings"


def fingerprint(cfg: RunConfig, batch: Batch, shape: tuple[int, ...], classes: int):
    """What a setting can change: the parameters (names, shapes, trainable), the weights built
    from one seed and started as a new run starts them (the prior shown the batch's images as
    its training images), the loss and its parts on a fixed batch with fixed noise early in
    training (KL warm-up under way), and prior samples."""
    model = build(cfg, shape, classes)
    model.prior.start((batch.x * 255).round().to(torch.uint8), torch.Generator().manual_seed(2))
    params = [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()]
    weights = [t.double().sum().item() for t in model.state_dict().values()]
    with torch.random.fork_rng():
        torch.manual_seed(1)
        losses = {k: v.item() for k, v in model.loss(batch, progress=0.1).items()}
    with torch.random.fork_rng():
        torch.manual_seed(2)
        samples = model.eval().sample(4).double().sum().item()
    return params, weights, losses, samples


def setting_matters(base: RunConfig, slot: str, cls: type[PartSettings], key: str, batch: Batch,
                    shape: tuple[int, ...], classes: int) -> str:
    """Moved off its default alone, setting `key` of part `cls` changes the built model, its
    loss or its samples (in the first kind of model that takes the moved value): a setting the
    build never passes on fails here. A setting that acts only beside another (its field's
    `needs`) is compared with that other moved in both models."""
    default = beside_its_needs(cls, key)
    f = {x.name: x for x in dataclasses.fields(cls)}[key]
    value = moved(getattr(default, key), f)
    if value is None:
        return NotApplicable(f"{key}: a free string, not moved")
    takers = kinds(base, slot, dataclasses.replace(default, **{key: value}))
    if not takers:
        return NotApplicable(f"{key}: moved to {value!r}, no kind of model takes it")
    changed = takers[0]
    before = with_part(changed, slot, default)
    try:
        after = fingerprint(changed, batch, shape, classes)
    except AelabError as e:  # e.g. a code map that needs another latent_dim: said, not compared
        return NotApplicable(f"{key}: moved to {value!r}, this model cannot be built with it ({e})")
    _expect(fingerprint(before, batch, shape, classes) != after,
            f"setting {key!r} moved to {value!r} changes nothing", "the build never passes the setting on")
    return f"{key} moved to {value!r} changes the model"


def _expect(ok: bool, what: str, mistake: str = "") -> None:
    if not ok:
        raise Failed(what, mistake)
