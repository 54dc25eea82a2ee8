"""What the student's Loss computes, found from its values on known inputs.

The Loss is called on one fixed batch with one input moved at a time, so that the change of
its value belongs to one term: moving mu and the second output s (x_ held) moves only the KL,
moving x_ (mu and s held) only the reconstruction. Each change is held against the change of
every closed form (conventions.py) computed the way aelab counts a loss: summed over the
pixels or the code's dimensions, averaged over the batch. The form that matches up to one
factor is what the student wrote; the factor says how they reduced and weighted it:

    factor = sign * half * (1 / D for a mean over the code's dimensions) * (B for a sum over the batch)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from aelab.course import conventions
from aelab.course.student import Student

POINTS = 8  # moved inputs per fit
MATCH = 2e-3  # relative misfit under which a form is taken to be the student's
FACTOR = 2e-3  # relative tolerance of a factor


@dataclass
class Fit:
    form: str | None  # the convention or likelihood family that matches; None: none does
    factor: float  # the student's change over the form's
    misfit: float  # of the best form
    flat: bool = False  # the loss did not change at all: no such term

    def reading(self, batch: int, dims: int) -> dict[str, object] | None:
        """{'sign': -1|1, 'half': 0.5|1|2, 'dims': 1|1/D, 'batch': 1|B} whose product is the factor; None if none is."""
        halves = (1.0, 0.5, 2.0)
        for sign, half, per_dim, per_batch in itertools.product((1, -1), halves, (1.0, 1.0 / dims), (1.0, float(batch))):
            target = sign * half * per_dim * per_batch
            if abs(self.factor - target) <= FACTOR * abs(target):
                return {"sign": sign, "half": half, "dims": per_dim, "batch": per_batch}
        return None


def _fit(changes: torch.Tensor, forms: dict[str, torch.Tensor]) -> Fit:
    scale = float(changes.abs().max())
    if scale == 0 or not math.isfinite(scale):
        return Fit(None, 0.0, math.inf, flat=scale == 0)
    best = Fit(None, 0.0, math.inf)
    for name, expected in forms.items():
        if not torch.isfinite(expected).all() or float(expected.abs().max()) == 0:
            continue
        a = float((changes * expected).sum() / (expected * expected).sum())
        misfit = float((changes - a * expected).abs().max()) / scale
        if misfit < best.misfit:
            best = Fit(name, a, misfit)
    return best if best.misfit < MATCH else Fit(None, best.factor, best.misfit)


def kl_fit(student: Student, xs, x_, epoch: int = 0, epochs: int = 1, seed: int = 0) -> Fit:
    """The KL term of the student's Loss: which convention's closed form, and its factor."""
    b, d = xs.shape[0], student.sizes.latent_size
    g = torch.Generator().manual_seed(seed)
    points = [(0.5 * torch.randn(b, d, generator=g) * (i > 0), torch.exp(torch.rand(b, d, generator=g) * 2 - 1))
              for i in range(POINTS + 1)]
    with torch.no_grad():
        values = torch.stack([student.loss_value(xs, x_.clone(), mu, s, epoch, epochs).double()
                              for mu, s in points]).double()
        forms = {}
        for name in conventions.STD:
            ks = torch.stack([conventions.kl(mu.double(), s.double(), name).mean() for mu, s in points])
            forms[name] = ks[1:] - ks[0]
    return _fit(values[1:] - values[0], forms)


def recon_fit(student: Student, xs, x_, mu=None, s=None, seed: int = 0) -> Fit:
    """The reconstruction term of the student's Loss: which likelihood family, and its factor."""
    g = torch.Generator().manual_seed(seed)
    x_ = x_.detach()
    probabilities = bool(((x_ >= 0) & (x_ <= 1)).all())
    outs = [x_.clone()]
    for _ in range(POINTS):
        noise = torch.randn(x_.shape, generator=g)
        outs.append((x_ + 0.2 * noise).clamp(0.01, 0.99) if probabilities else x_ + 0.5 * noise)
    with torch.no_grad():
        args = (mu.detach(), s.detach()) if mu is not None else ()
        values = torch.stack([student.loss_value(xs, o, *args).double() for o in outs])
        forms = {}
        for name in conventions.RECON:
            if name == "bce-probabilities" and not probabilities:
                continue
            rs = torch.stack([conventions.recon(o.double(), xs.double(), name).mean() for o in outs])
            forms[name] = rs[1:] - rs[0]
    return _fit(values[1:] - values[0], forms)
