"""Skeleton submissions written as students write them, with one thing changed at a time.

Two shapes of the assignment, structurally different:
- "split": the assignment's own layout. Each output of the encoder has its own
  nn.Sequential (self.mu, self.sigma); the CVAE's encoder and decoder take the labels and join
  the one-hot inside; forward returns a tuple (x_, mu, sigma, z); the Loss is a class with
  recon_loss and kl_div methods, as in seed 001.
- "trunk": one shared hidden layer and two heads; the CVAE joins the one-hot outside the
  encoder and decoder, in forward; forward returns a dict (VAE) or a reordered tuple
  (mu, sigma, x_) (CVAE), the AE a bare tensor; the Loss is computed inline in forward with
  torch.nn.functional and returns (loss, recon, kl).

`write(folder, shape, **changes)` writes model.py and main.py; each change replaces one line.
"""

from __future__ import annotations

from pathlib import Path

SPLIT_MODEL = '''
import torch
import torch.nn.functional as F
from torch import nn


def onehot(ys):
    return F.one_hot(ys, 10).float()


class Encoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, is_dist=False, **kwargs):
        super(Encoder, self).__init__()
        n_in = x_dim + (10 if kwargs.get("decode_type") == "CVAE" else 0)
        self.mu = nn.Sequential(nn.Linear(n_in, hidden_size), nn.ReLU(), nn.Linear(hidden_size, latent_size))
        if is_dist:
            self.sigma = nn.Sequential(nn.Linear(n_in, hidden_size), nn.ReLU(), nn.Linear(hidden_size, latent_size))
        {EXTRA_LAYER}
        self.is_dist = is_dist

    def forward(self, xs, ys=None):
        if ys is not None:
            xs = torch.cat([xs, onehot(ys)], dim=1)
        if self.is_dist:
            mu = {MU}
            sigma = {SPREAD}
            return mu, sigma
        return self.mu(xs)


class Decoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, decode_type="AE", **kwargs):
        super(Decoder, self).__init__()
        self.cond = decode_type == "CVAE"
        n_in = latent_size + (10 if self.cond else 0)
        self.decoder = nn.Sequential(nn.Linear(n_in, hidden_size), nn.ReLU(), nn.Linear(hidden_size, x_dim))

    def forward(self, zs, ys=None, **otherinputs):
        if self.cond:
            zs = torch.cat([zs, {LABEL_IN}], dim=1)
        out = self.decoder(zs)
        return {DEC_OUT}


class AutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs):
        super(AutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        z = self.encoder(x)
        x_ = self.decoder(z)
        return z, x_


class VariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs):
        super(VariationalAutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, xs):
        mu, sigma = self.encoder(xs)
        z = {SAMPLE}
        x_ = self.decoder(z)
        return x_, mu, sigma, z


class ConditionalVariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs):
        super(ConditionalVariationalAutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, xs, ys):
        mu, sigma = self.encoder(xs, ys)
        z = {SAMPLE}
        x_ = self.decoder(z, ys)
        return x_, mu, sigma, z
'''

SPLIT_MAIN = '''
import torch
import torch.nn.functional as F
from torch import nn


class Loss(nn.Module):
    def __init__(self, decode_type="AE", **kwargs):
        super(Loss, self).__init__()
        self.decode_type = decode_type
        {LOSS_INIT}

    def recon_loss(self, x, x_):
        return {RECON}

    def kl_div(self, mu, sigma):
        return {KL}

    def forward(self, x, x_, mu=None, sigma=None, epoch=0, epoch_num=1, **otherinputs):
        recon = self.recon_loss(x, x_)
        if self.decode_type == "AE":
            return recon
        kl = self.kl_div(mu, sigma)
        return {TOTAL}
'''

TRUNK_MODEL = '''
import torch
import torch.nn.functional as F
from torch import nn


class Encoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, is_dist=False, decode_type="AE"):
        super().__init__()
        n_in = x_dim + 10 * (decode_type == "CVAE")
        self.fc = nn.Linear(n_in, hidden_size)
        self.fc_mu = nn.Linear(hidden_size, latent_size)
        self.fc_var = nn.Linear(hidden_size, latent_size) if is_dist else None
        {EXTRA_LAYER}

    def forward(self, inputs):
        h = F.relu(self.fc(inputs))
        if self.fc_var is None:
            return self.fc_mu(h)
        mu = {MU}
        sigma = {SPREAD}
        return (mu, sigma)


class Decoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, is_dist=False, decode_type="AE"):
        super().__init__()
        n_in = latent_size + 10 * (decode_type == "CVAE")
        self.fc1 = nn.Linear(n_in, hidden_size)
        self.fc2 = nn.Linear(hidden_size, x_dim)

    def forward(self, zs):
        out = self.fc2(F.relu(self.fc1(zs)))
        return {DEC_OUT}


class AutoEncoder(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, xs):
        return self.decoder(self.encoder(xs))


class VariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, xs):
        mu, sigma = self.encoder(xs)
        z = {SAMPLE}
        return {"recon": self.decoder(z), "mu": mu, "sigma": sigma}


class ConditionalVariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, xs, ys):
        c = F.one_hot(ys, 10).float()
        mu, sigma = self.encoder(torch.cat([xs, c], dim=1))
        z = {SAMPLE}
        x_ = self.decoder(torch.cat([z, {LABEL_IN}], dim=1))
        return mu, sigma, x_
'''

TRUNK_MAIN = '''
import torch
import torch.nn.functional as F


class Loss(torch.nn.Module):
    def __init__(self, decode_type):
        super().__init__()
        self.decode_type = decode_type
        {LOSS_INIT}

    def forward(self, x, x_, mu=None, sigma=None, epoch=0, epoch_num=1):
        recon = {RECON}
        if mu is None:
            return recon
        kl = {KL}
        return {TOTAL}, recon, kl
'''

# the correct skeleton of each shape, a log-variance throughout
SPLIT = {"MU": "self.mu(xs)", "SPREAD": "self.sigma(xs)",
         "SAMPLE": "mu + torch.exp(0.5 * sigma) * torch.randn_like(sigma)",
         "DEC_OUT": "out", "LABEL_IN": "onehot(ys)", "EXTRA_LAYER": "",
         "RECON": 'F.binary_cross_entropy_with_logits(x_, x, reduction="sum") / x.shape[0]',
         "KL": "-0.5 * torch.sum(1 + sigma - mu.pow(2) - sigma.exp()) / mu.shape[0]",
         "TOTAL": "recon + kl", "LOSS_INIT": ""}
TRUNK = {"MU": "self.fc_mu(h)", "SPREAD": "self.fc_var(h)",
         "SAMPLE": "mu + torch.exp(0.5 * sigma) * torch.randn_like(mu)",
         "DEC_OUT": "out", "LABEL_IN": "c", "EXTRA_LAYER": "",
         "RECON": 'F.binary_cross_entropy_with_logits(x_, x, reduction="none").sum(1).mean()',
         "KL": "(-0.5 * (1 + sigma - mu ** 2 - torch.exp(sigma)).sum(dim=1)).mean()",
         "TOTAL": "recon + kl", "LOSS_INIT": ""}
SHAPES = {"split": (SPLIT_MODEL, SPLIT_MAIN, SPLIT), "trunk": (TRUNK_MODEL, TRUNK_MAIN, TRUNK)}


def write(folder: Path, shape: str, loss: bool = True, **changes: str) -> Path:
    """model.py (and main.py, unless loss=False) of `shape` with `changes` to its lines; the model.py path."""
    model, main, lines = SHAPES[shape]
    values = {**lines, **changes}
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("model.py", model), ("main.py", main)):
        if name == "main.py" and not loss:
            continue
        body = text
        for key, value in values.items():
            body = body.replace("{" + key + "}", value)
        (folder / name).write_text(body.lstrip())
    return folder / "model.py"


def lines_of(path: Path, needle: str) -> list[str]:
    """'model.py:LINE' of every line of `path` that holds `needle`."""
    found = [f"{path.name}:{i}" for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text]
    assert found, f"{needle!r} not in {path}"
    return found
