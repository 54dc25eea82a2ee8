"""The latent-space explorer's model side (`aelab explore`; the web server is explore.py).

One run's best checkpoint and its test codes, loaded once, and the questions the page asks
of them: where the test images lie in a plane of the code space, what a code decodes to
(as every label, for a CVAE), a draw from the prior, a path between two test images, and a
test image's code sent through channel noise. Every request is checked here, field by
field, before the model sees it; a bad one raises `BadRequest` with one line saying why.
Decoding runs without gradients, one request at a time (`lock`), so many clients at once do
not oversubscribe the cores.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from functools import cached_property

import torch

from aelab import hardware, registry
from aelab.data.splits import ImageData
from aelab.evaluation.metrics import ACTIVE_UNIT_THRESHOLD, posterior_means, psnr_per_image
from aelab.reporting import report
from aelab.reporting.codespace import fitted_gaussian
from aelab.reporting.figure_data import FigureOptions, Subject
from aelab.runs.rundir import RunDir

SLIDERS = 8  # sliders for the dimensions whose posterior mean varies most over the test images
CODE_LIMIT = 1e3  # |z_j| above this is refused (trained codes lie within a few units of 0)
SIGMA_MAX = 1.0  # channel noise sd against a code of mean square 1 (sigma 1: as much noise as signal)
STEPS = (2, 32)  # decodings along an interpolation path
SEEDS = 2**31


class BadRequest(ValueError):
    """A request the explorer refuses: answered with HTTP 400 and this one line."""


def image_bytes(images: torch.Tensor) -> list[str]:
    """(B, C, H, W) images in [0, 1] as base64 of their uint8 pixels in (H, W, C) order."""
    pixels = images.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu()
    return [base64.b64encode(p.numpy().tobytes()).decode("ascii") for p in pixels]


def _fields(body: dict, allowed: set[str]) -> None:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; expected: {', '.join(sorted(allowed))}")


def _integer(body: dict, key: str, lo: int, hi: int, default: int | None = None) -> int:
    """body[key] as an int in [lo, hi) (the default where absent, if there is one)."""
    value = body.get(key, default)
    if value is None:
        raise BadRequest(f"{key}: missing")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # from a query string
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key}: must be a whole number, got {json.dumps(value)[:40]}")
    if not lo <= value < hi:
        raise BadRequest(f"{key}: {value} is out of range {lo}-{hi - 1}")
    return value


def _number(body: dict, key: str, lo: float, hi: float) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{key}: must be a finite number, got {json.dumps(value)[:40]}")
    if not lo <= value <= hi:
        raise BadRequest(f"{key}: {value:g} is out of range {lo:g}-{hi:g}")
    return float(value)


class Explorer:
    def __init__(self, run: RunDir, data: ImageData | None = None):
        self.run = run
        self.model, self.cfg, payload = run.model("best")
        self.device = next(self.model.parameters()).device
        self.data = (data if data is not None else registry.build_data(self.cfg)).to(self.device)
        self.epoch = int(payload["epoch"])
        self.lock = threading.Lock()
        with torch.no_grad():
            batches = self.data.eval_batches(self.data.test, hardware.eval_batch(self.data.image_shape,
                                                                               self.cfg.train.eval_batch_size))
            self.codes, self.labels = posterior_means(self.model, batches)  # (N, D) float64, (N,)
        self.spread = self.codes.var(0)  # Var_x E[z_j | x]: the measure of active_units
        self.mean = self.codes.mean(0)
        self.n_test, self.dim = self.codes.shape
        self.labelled = self.model.condition.dim  # labels a CVAE takes; 0 for none
        self.names = list(self.data.class_names)
        self._fitted = None  # for a deterministic code: a Gaussian fitted to training codes, on first use

    # what the page shows of the run ----------------------------------------------------------

    def info(self) -> dict:
        m = self.model
        record = self._eval_record()
        done = self.run.done()
        entry = report.Entry(self.run.path.name, self.cfg, record, self.run.metrics_path, done, self.run.training())
        order = torch.argsort(self.spread, descending=True)[:min(SLIDERS, self.dim)]
        sd = (self.codes.std(0) if self.n_test > 1 else torch.ones(self.dim, dtype=torch.float64)).clamp_min(0.25)
        # (a dimension the test codes hardly move still gets a slider of +-1 to move it with)
        return {
            "run": str(self.run.path), "name": self.run.path.name, "kind": self.cfg.model.short,
            "settings": report.settings_line(entry), "epoch": self.epoch, "dataset": self.cfg.data.name,
            "latent_dim": self.dim, "image_shape": list(self.data.image_shape), "n_test": self.n_test,
            "classes": self.names, "labels": self.labelled, "stochastic": m.latent.stochastic,
            "prior": self._prior_words(),
            "channel_sigma": m.channel.sigma if m.channel.active else None, "sigma_max": SIGMA_MAX,
            "active_units": int((self.spread > ACTIVE_UNIT_THRESHOLD).sum()),
            "sliders": [{"dim": int(j), "lo": float(self.mean[j] - 4 * sd[j]), "hi": float(self.mean[j] + 4 * sd[j]),
                         "variance": float(self.spread[j])} for j in order],
            "metrics": [[label + (f" (K={record['nll_k']})" if key == "nll_is" and "nll_k" in record else ""),
                         format(record[key], fmt), unit]
                        for key, (label, unit, fmt) in report.METRICS.items() if isinstance(record.get(key), (int, float))],
            "metrics_note": "" if record else f"no eval.json yet: aelab eval {self.run.path}",
            "units": report.UNITS,
        }

    def _prior_words(self) -> str:
        if not self.model.latent.stochastic:
            return f"a Gaussian fitted to {FigureOptions().fit_codes} training codes (an AE has no prior)"
        return self.model.prior.words

    def _eval_record(self) -> dict:
        record = self.run.evaluation()
        return record if record.get("epoch") == self.epoch else {}  # measured another checkpoint: not shown

    def points(self, query: dict) -> dict:
        """The test codes in a plane: `axes` 'pca' (the codes' two principal directions, about
        their mean) or 'I,J' (dimensions I and J, zero-based, the others as they are). The page
        places a code z at (a1 . (z - origin), a2 . (z - origin)) and moves it to (u, v) by
        z + (u - a1 . (z - o)) a1 + (v - a2 . (z - o)) a2 (the axes are orthonormal)."""
        _fields(query, {"axes"})
        axes = str(query.get("axes", "pca" if self.dim > 2 else "0,1"))
        eye = torch.eye(self.dim, dtype=torch.float64)
        if axes == "pca" and self.dim > 2:
            (a1, a2), share = self._principal
            origin, names = self.mean, [f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})"]
        else:
            parts = ["0", "1"] if axes == "pca" else axes.split(",")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise BadRequest(f"axes: {axes[:40]!r} is neither 'pca' nor two dimensions 'I,J'")
            i, j = (int(p) for p in parts)
            for d in (i, j):
                if d >= self.dim:
                    raise BadRequest(f"axes: dimension {d} is out of range 0-{self.dim - 1}")
            if i == j and self.dim > 1:
                raise BadRequest(f"axes: two different dimensions are needed, got {i} twice")
            a1 = eye[i]
            a2 = eye[j] if self.dim > 1 else torch.zeros(self.dim, dtype=torch.float64)  # a 1-D code: a line
            origin, names = torch.zeros(self.dim, dtype=torch.float64), [f"z_{i + 1}", f"z_{j + 1}" if self.dim > 1 else ""]
        offset = self.codes - origin
        return {"axes": axes, "x": [round(v, 4) for v in (offset @ a1).tolist()],
                "y": [round(v, 4) for v in (offset @ a2).tolist()], "labels": self.labels.tolist(),
                "origin": origin.tolist(), "a1": a1.tolist(), "a2": a2.tolist(), "names": names}

    @cached_property
    def _principal(self) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The test codes' first two principal directions (each with its largest entry
        positive) and each component's share of the variance."""
        centred = self.codes - self.mean
        values, vectors = torch.linalg.eigh(centred.T @ centred / max(self.n_test - 1, 1))  # ascending
        a1, a2 = (a * a[a.abs().argmax()].sign() for a in (vectors[:, -1], vectors[:, -2]))
        return (a1, a2), values.flip(0) / values.sum().clamp_min(1e-12)

    # decoding ----------------------------------------------------------------------------

    def _code(self, body: dict, key: str = "z") -> torch.Tensor:
        z = body.get(key)
        if not isinstance(z, list) or len(z) != self.dim:
            got = f"{len(z)} numbers" if isinstance(z, list) else json.dumps(z)[:40]
            raise BadRequest(f"{key}: must be a list of {self.dim} numbers (the code's length), got {got}")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in z):
            raise BadRequest(f"{key}: every entry must be a number")
        if not all(math.isfinite(v) and abs(v) <= CODE_LIMIT for v in z):
            raise BadRequest(f"{key}: every entry must be finite and at most {CODE_LIMIT:g} in size")
        return torch.tensor(z, dtype=torch.float32, device=self.device).unsqueeze(0)

    def _label(self, body: dict, default: int = 0) -> torch.Tensor | None:
        if not self.labelled:
            if body.get("label") is not None:
                raise BadRequest(f"label: the {self.cfg.model.short} of this run is not conditioned on labels")
            return None
        return torch.tensor([_integer(body, "label", 0, self.labelled, default)], device=self.device)

    def _decode(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        with self.lock, torch.no_grad():
            return self.model.decode_mean(z, y).float()

    def decode(self, body: dict) -> dict:
        """{'z': code, 'label': y (a CVAE), 'all_labels': true for the code as every label}."""
        _fields(body, {"z", "label", "all_labels"})
        z, y = self._code(body), self._label(body)
        if not body.get("all_labels"):
            return {"image": image_bytes(self._decode(z, y))[0]}
        if not self.labelled:
            raise BadRequest(f"all_labels: the {self.cfg.model.short} of this run is not conditioned on labels")
        every = image_bytes(self._decode(z.expand(self.labelled, -1), torch.arange(self.labelled, device=self.device)))
        return {"image": every[int(y)], "images": every}  # one decoding per label, the asked-for one among them

    def random(self, body: dict) -> dict:
        """A code drawn from the prior (p(z | y) for a CVAE with a learned prior) or, for a
        deterministic code, from a Gaussian fitted to training codes, as the report does."""
        _fields(body, {"seed", "label"})
        seed, y = _integer(body, "seed", 0, SEEDS, 0), self._label(body)
        g = torch.Generator().manual_seed(seed)
        with self.lock, torch.no_grad():
            if self.model.latent.stochastic:
                eps = torch.randn(1, self.dim, generator=g).to(self.device)
                z = self.model.prior_draw(eps, y, g).double().cpu()[0]
            else:
                dist = self._fitted_gaussian()
                z = dist.mean + torch.randn(self.dim, generator=g, dtype=torch.float64) @ dist.scale_tril.T
        return {"z": z.tolist()}

    def _fitted_gaussian(self):
        if self._fitted is None:  # the report's fit (codespace.gaussian_samples)
            subject = Subject(self.model, self.data, self.names)
            self._fitted = fitted_gaussian(subject.train_codes(subject.options.fit_codes))
        return self._fitted

    def image(self, query: dict) -> dict:
        """Test image `index`: the image, its reconstruction, its code and label."""
        _fields(query, {"index"})
        i = _integer(query, "index", 0, self.n_test)
        x, label = self._test_image(i)
        z = self.codes[i:i + 1].float().to(self.device)
        y = label.view(1) if self.labelled else None
        return {"index": i, "label": int(label), "image": image_bytes(x)[0],
                "reconstruction": image_bytes(self._decode(z, y))[0], "code": self.codes[i].tolist()}

    def _test_image(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.test.images[i:i + 1].float().div(255), self.data.test.labels[i]

    def interpolate(self, body: dict) -> dict:
        """Decodings on the straight path between the codes of test images `from` and `to`
        (decoded with `label`, for a CVAE: by default the label of `from`)."""
        _fields(body, {"from", "to", "steps", "label"})
        a, b = (_integer(body, key, 0, self.n_test) for key in ("from", "to"))
        steps = _integer(body, "steps", STEPS[0], STEPS[1] + 1, 9)
        y = self._label(body, int(self.labels[a]))
        t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)
        z = ((1 - t) * self.codes[a] + t * self.codes[b]).float().to(self.device)
        return {"images": image_bytes(self._decode(z, None if y is None else y.expand(steps)))}

    def channel(self, body: dict) -> dict:
        """Test image `index`'s code (power-normalised, as the channel sends it) with Gaussian
        noise of sd `sigma` added (drawn from `seed`), decoded; PSNR against the test image,
        and that of the clean code's decoding."""
        if not self.model.channel.active:
            raise BadRequest(f"this run's model has no channel (model.channel.name = {self.cfg.model.channel.name!r})")
        _fields(body, {"index", "sigma", "seed"})
        i = _integer(body, "index", 0, self.n_test)
        sigma = _number(body, "sigma", 0.0, SIGMA_MAX)
        g = torch.Generator().manual_seed(_integer(body, "seed", 0, SEEDS, 0))
        x, label = self._test_image(i)
        z = self.codes[i:i + 1].float()
        noisy = z + sigma * torch.randn(z.shape, generator=g)
        y = label.view(1) if self.labelled else None
        clean, received = self._decode(torch.cat([z, noisy]).to(self.device), None if y is None else y.expand(2))
        clean_db, received_db = psnr_per_image(torch.stack([clean, received]), x.expand(2, -1, -1, -1)).tolist()
        return {"index": i, "sigma": sigma, "image": image_bytes(x)[0], "clean": image_bytes(clean[None])[0],
                "noisy": image_bytes(received[None])[0], "psnr_db": round(received_db, 3),
                "clean_psnr_db": round(clean_db, 3)}
