"""One of a student's models, built from their model.py and understood from what it does.

`Student` holds their `AutoEncoder`, `VariationalAutoEncoder` or
`ConditionalVariationalAutoEncoder` and their `Loss`, and calls them as their `main.py`
would: `forward(xs)` or `forward(xs, ys)` on flat images, then `loss(xs, x_)` or
`loss(xs, x_, mu, sigma[, epoch, epoch_num])`. `Layout` is what is learnt by running them,
from values alone: where the images enter the encoder and the code enters the decoder (for
replaying them), whether the decoder gives probabilities or logits, and what standard
deviation their sampling gives the code for a known encoder output (conventions.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from aelab.course import code, conventions, replay
from aelab.course.trace import Call, Calls
from aelab.errors import AelabError

PROBE_ROWS = 32  # images per probe batch
DRAWS = 64  # forward passes whose codes give the sampling's spread
GRID = (0.25, 4.0)  # the known second outputs the sampling is given, spread over the code's dimensions


@dataclass
class Sampling:
    """What the student's forward draws for mu = 0 and known second outputs s."""

    convention: str | None  # conventions.STD's name whose sigma(s) the spread follows; None: none does
    scale: float  # spread / sigma(s): 1 for N(0, 1) noise, 0.289 for U(0, 1)
    kurtosis: float  # excess kurtosis of the standardised draws: 0 Gaussian, -1.2 uniform
    offset: float  # mean / spread of the draws: 0 Gaussian, 1.73 for U(0, 1)
    fit: float  # the spread's largest misfit to the convention, in log units

    @property
    def gaussian(self) -> bool:
        return self.convention is not None and abs(self.kurtosis) < 0.5 and abs(self.offset) < 0.2 \
            and abs(math.log(self.scale)) < 0.1

    @property
    def uniform(self) -> bool:
        return self.kurtosis < -0.8


@dataclass
class Layout:
    encoder: list[Call]  # one call per label for a CVAE (calls[k] on a batch labelled k), else one
    decoder: list[Call]
    images: replay.Slot  # where xs enters the encoder
    code: replay.Slot  # where z enters the decoder
    probabilities: bool  # the decoder's output is in [0, 1]
    sampling: Sampling | None  # None for an AE


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


class Student:
    def __init__(self, model_file: str | Path, loss_file: str | Path | None, decode_type: str,
                 sizes: code.Sizes = code.Sizes(), num_classes: int = 10):
        self.model_file = Path(model_file).resolve()
        self.loss_file = Path(loss_file).resolve() if loss_file else None
        self.files = {str(self.model_file)} | ({str(self.loss_file)} if self.loss_file else set())
        self.type, self.sizes, self.num_classes = decode_type, sizes, num_classes
        self.module = code.import_model(self.model_file)
        self.net = code.build(self.module, decode_type, sizes)
        for part in ("encoder", "decoder"):
            if not isinstance(getattr(self.net, part, None), torch.nn.Module):
                raise AelabError(f"{self.model_file.name}: {code.CLASSES[decode_type]} has no module self.{part} "
                                 "(the assignment's __init__ keeps the encoder and decoder it is given)")
        self.calls = Calls(self.net.encoder, self.net.decoder)
        loss_cls, self.loss_why = code.import_loss(self.loss_file, self.model_file)
        self.loss = code.build_loss(loss_cls, decode_type, self.files) if loss_cls else None
        # (required, accepted) positional parameters of its forward: epoch, epoch_num go to one that takes them
        self.loss_arity = code.loss_positional(self.loss) if self.loss is not None else (0, 0)
        self.layout: Layout | None = None

    @property
    def stochastic(self) -> bool:
        return self.type != "AE"

    @property
    def conditional(self) -> bool:
        return self.type == "CVAE"

    # --- their code, called as their main.py calls it

    def forward(self, xs: torch.Tensor, ys: torch.Tensor | None):
        with code.as_model(self.module), code.student(self.files, f"{code.CLASSES[self.type]}.forward"):
            return self.net(xs, ys) if self.conditional else self.net(xs)

    def encoder_outputs(self, out) -> tuple[torch.Tensor, ...]:
        """(z,) of an AE's encoder, (mu, s) of a VAE's, as the encoder returned them."""
        got = tuple(out) if isinstance(out, (tuple, list)) else (out,)
        want = 2 if self.stochastic else 1
        if len(got) != want or not all(isinstance(t, torch.Tensor) for t in got):
            what = f"{len(got)} values" if isinstance(out, (tuple, list)) else type(out).__name__
            raise AelabError(f"{self.model_file.name}: the {self.type}'s Encoder returns {what}; the assignment's "
                             + ("returns mu and sigma" if self.stochastic else "returns one code tensor"))
        return got

    @property
    def loss_takes_epoch(self) -> bool:
        """Its Loss takes epoch and epoch_num after (xs, x_, mu, sigma), as seed 001's does."""
        needs, takes = self.loss_arity
        return needs > 4 or (self.stochastic and takes >= 6)

    def loss_args(self, xs, x_, mu=None, s=None, epoch: int = 0, epochs: int = 1) -> list:
        """loss(xs, x_) for an AE, loss(xs, x_, mu, sigma) for a VAE; then epoch, epoch_num where it takes them."""
        args = [xs, x_] + ([mu, s] if self.stochastic else [])
        needs, _ = self.loss_arity
        if needs > len(args):  # an AE given a Loss that wants mu and sigma too: it gets None for them
            args += [None] * (4 - len(args))
        if self.loss_takes_epoch:
            args += [epoch, epochs]
        return args

    def loss_value(self, xs, x_, mu=None, s=None, epoch: int = 0, epochs: int = 1) -> torch.Tensor:
        """Their Loss called positionally as seed 001's train_epoch calls it; the number it gives."""
        with code.as_model(self.module), code.student(self.files, "Loss"):
            got = self.loss(*self.loss_args(xs, x_, mu, s, epoch, epochs))
        if isinstance(got, (tuple, list)) and got:
            got = got[0]
        elif isinstance(got, dict) and "loss" in got:
            got = got["loss"]
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            what = f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else type(got).__name__
            raise AelabError(f"{self.loss_file.name}: Loss returns {what}, not one number "
                             "(a scalar tensor, a tuple's first item or a dict's 'loss')")
        return got.reshape(())

    def reconstruction(self, out, decoded: torch.Tensor) -> torch.Tensor:
        """x_ among what forward returned: the decoder's output itself, or equal to it, or
        the one tensor of its size that is something else made of it (a sigmoid of it)."""
        items = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else [out]
        items = [t for t in items if isinstance(t, torch.Tensor)]
        for t in items:
            if t is decoded:
                return t
        same = [t for t in items if t.numel() == decoded.numel()]
        for t in same:
            if torch.equal(t.detach().reshape(-1), decoded.detach().reshape(-1)):
                return t
        if len(same) == 1:
            return same[0]
        raise AelabError(f"{self.model_file.name}: {code.CLASSES[self.type]}.forward returns no tensor of the "
                         f"decoder's output size {tuple(decoded.shape)} (the reconstruction x_)")

    def step(self, xs: torch.Tensor, ys: torch.Tensor | None):
        """One forward as training runs it: (what forward returned, the encoder's outputs, the decoder's output, x_)."""
        with self.calls.record():
            out = self.forward(xs, ys)
        if not self.calls.encoder or not self.calls.decoder:
            missing = "Encoder" if not self.calls.encoder else "Decoder"
            raise AelabError(f"{self.model_file.name}: {code.CLASSES[self.type]}.forward never calls its {missing}")
        enc, dec = self.calls.encoder[-1], self.calls.decoder[-1]
        if not isinstance(dec.out, torch.Tensor):
            raise AelabError(f"{self.model_file.name}: the Decoder returns {type(dec.out).__name__}, not a tensor")
        return out, self.encoder_outputs(enc.out), dec.out, self.reconstruction(out, dec.out)

    # --- what is learnt from running them

    def probe_batch(self, rows: int = PROBE_ROWS, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        xs = torch.rand(rows, self.sizes.x_dim, generator=g)
        ys = torch.arange(rows) % self.num_classes if self.conditional else None
        return xs, ys

    def learn(self, xs: torch.Tensor | None = None, ys: torch.Tensor | None = None) -> Layout:
        """The layout, from forward passes on `xs` (a probe batch of noise by default), with
        torch's random state as it was before."""
        if xs is None:
            xs, ys = self.probe_batch()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            self.layout = self._learn(xs, ys)
        return self.layout

    def _seeded_step(self, xs, ys, substitute=None, seed: int = 1):
        torch.manual_seed(seed)
        with self.calls.record(substitute):
            self.forward(xs, ys)
        return self.calls.encoder[-1], self.calls.decoder[-1]

    def _learn(self, xs, ys) -> Layout:
        b = xs.shape[0]
        torch.manual_seed(1)  # as _seeded_step: the moved and the redrawn calls below differ from it by one thing
        self.step(xs, ys)  # their forward as training runs it, its outputs checked
        enc, dec = self.calls.encoder[-1], self.calls.decoder[-1]
        images = replay.find(enc, xs)
        if images is None:
            raise AelabError(f"{self.model_file.name}: the images xs reach the Encoder changed (not as given, nor "
                             "as columns of one of its inputs); aelab cannot call it on other images")
        shift = lambda out: _map_first(out, lambda t: t + 1)  # noqa: E731  (mu + 1, or z + 1 for an AE)
        _, moved = self._seeded_step(xs, ys, shift)
        slots = [c for c in replay.changed(dec, moved, b) if c.stop - c.start == self.sizes.latent_size]
        if len(slots) > 1:  # the mean passed on too (decoder(z, mu=mu, sigma=sigma)): z is what the noise moves
            _, redrawn = self._seeded_step(xs, ys, seed=2)
            drawn = replay.changed(dec, redrawn, b)
            slots = [c for c in slots if c in drawn] or slots[:1]
        code_slot = slots[0] if len(slots) == 1 else None
        if code_slot is None:
            raise AelabError(f"{self.model_file.name}: cannot find the code z among the Decoder's inputs (moving the "
                             "encoder's mean moved none, or more than one of them, or not latent_size numbers)")
        probabilities = bool(((dec.out >= 0) & (dec.out <= 1)).all())
        encs, decs = [enc], [dec]
        if self.conditional:
            encs, decs = [], []
            for k in range(self.num_classes):
                e, d = self._seeded_step(xs[:2], torch.full((2,), k, dtype=torch.long))
                encs.append(e)
                decs.append(d)
        sampling = self._sampling(xs, ys, code_slot) if self.stochastic else None
        return Layout(encs, decs, images, code_slot, probabilities, sampling)

    def codes_drawn(self, xs, ys, slot: replay.Slot, mu: torch.Tensor, s: torch.Tensor, draws: int) -> torch.Tensor:
        """The codes z (draws * B, D) their forward draws when the encoder gives (mu, s)."""
        sub = lambda out: _map_both(out, mu, s)  # noqa: E731
        zs = []
        for i in range(draws):
            _, d = self._seeded_step(xs, ys, sub, seed=100 + i)
            zs.append(_flat(replay._get(d, slot.arg))[:, slot.start:slot.stop])
        return torch.cat(zs)

    def _sampling(self, xs, ys, slot: replay.Slot) -> Sampling:
        b, d = xs.shape[0], self.sizes.latent_size
        s = torch.logspace(math.log10(GRID[0]), math.log10(GRID[1]), d).expand(b, d).contiguous()
        z = self.codes_drawn(xs, ys, slot, torch.zeros(b, d), s, DRAWS).double()
        return fit_sampling(z, s[0].double())


def fit_sampling(z: torch.Tensor, s: torch.Tensor) -> Sampling:
    """The convention whose sigma(s) the spread of codes z (N, D) drawn at mu = 0 follows."""
    mean, spread = z.mean(0), z.std(0)
    if not torch.isfinite(spread).all() or (spread <= 0).any():
        return Sampling(None, float(spread.mean()) if torch.isfinite(spread).all() else float("nan"), 0.0, 0.0, math.inf)
    u = (z - mean) / spread
    kurtosis = float(u.pow(4).mean() - 3)
    best, fit, scale = None, math.inf, 1.0
    for name in conventions.STD:
        with torch.no_grad():
            sd = conventions.sigma(s, name).abs()
        if not torch.isfinite(sd).all() or (sd <= 0).any():
            continue
        r = spread.log() - sd.log()
        misfit = float((r - r.mean()).abs().max())
        if misfit < fit:
            best, fit, scale = name, misfit, float(r.mean().exp())
    offset = float((mean / spread).mean())
    return Sampling(best if fit < 0.08 else None, scale, kurtosis, offset, fit)


def _map_first(out, fn):
    if isinstance(out, torch.Tensor):
        return fn(out)
    return type(out)([fn(out[0]), *out[1:]])


def _map_both(out, mu: torch.Tensor, s: torch.Tensor):
    return type(out)([mu.to(out[0].dtype), s.to(out[1].dtype), *out[2:]])
