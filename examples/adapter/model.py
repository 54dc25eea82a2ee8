"""The course's model.py, filled in: the assignment's skeleton classes in its own interface
(`Encoder(x_dim, hidden_size, latent_size, is_dist)`, `Decoder(x_dim, hidden_size,
latent_size, decode_type)`, AE / VAE / CVAE with `forward(xs)` or `forward(xs, ys)`), written
as a student would write them. Nothing here knows about aelab: adapter.py plugs these classes
into it unchanged.

xs are flattened images (B, x_dim) in [0, 1]; ys are digit labels (B,).
"""

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10


class Encoder(nn.Module):
    """xs (B, x_dim) -> a code (B, latent_size), or (mu, log_var) of q(z|x) when is_dist."""

    def __init__(self, x_dim, hidden_size, latent_size, is_dist):
        super().__init__()
        self.is_dist = is_dist
        self.hidden = nn.Linear(x_dim, hidden_size)
        self.out = nn.Linear(hidden_size, 2 * latent_size if is_dist else latent_size)

    def forward(self, xs):
        h = self.out(F.relu(self.hidden(xs)))
        if self.is_dist:
            mu, log_var = h.chunk(2, dim=-1)
            return mu, log_var
        return h


class Decoder(nn.Module):
    """zs (B, latent_size) -> logits of the pixels (B, x_dim); a CVAE's decoder is given the
    one-hot label after the code (B, latent_size + 10)."""

    def __init__(self, x_dim, hidden_size, latent_size, decode_type):
        super().__init__()
        in_size = latent_size + (NUM_CLASSES if decode_type == "CVAE" else 0)
        self.hidden = nn.Linear(in_size, hidden_size)
        self.out = nn.Linear(hidden_size, x_dim)

    def forward(self, zs):
        return self.out(F.relu(self.hidden(zs)))  # logits: the loss applies the sigmoid


class AE(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size):
        super().__init__()
        self.encoder = Encoder(x_dim, hidden_size, latent_size, is_dist=False)
        self.decoder = Decoder(x_dim, hidden_size, latent_size, decode_type="AE")

    def forward(self, xs):
        zs = self.encoder(xs)
        return self.decoder(zs)


class VAE(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size):
        super().__init__()
        self.encoder = Encoder(x_dim, hidden_size, latent_size, is_dist=True)
        self.decoder = Decoder(x_dim, hidden_size, latent_size, decode_type="VAE")

    def reparameterize(self, mu, log_var):
        std = torch.exp(0.5 * log_var)
        eps = torch.randn_like(std)
        return mu + eps * std

    def forward(self, xs):
        mu, log_var = self.encoder(xs)
        zs = self.reparameterize(mu, log_var)
        return self.decoder(zs), mu, log_var


class CVAE(VAE):
    def __init__(self, x_dim, hidden_size, latent_size):
        nn.Module.__init__(self)
        self.encoder = Encoder(x_dim + NUM_CLASSES, hidden_size, latent_size, is_dist=True)
        self.decoder = Decoder(x_dim, hidden_size, latent_size, decode_type="CVAE")

    def forward(self, xs, ys):
        onehot = F.one_hot(ys, NUM_CLASSES).float()
        mu, log_var = self.encoder(torch.cat([xs, onehot], dim=1))
        zs = self.reparameterize(mu, log_var)
        return self.decoder(torch.cat([zs, onehot], dim=1)), mu, log_var


def loss_function(logits, xs, mu=None, log_var=None):
    """The negative ELBO of a batch, summed over pixels and averaged over images (nats per
    image): BCE plus KL(q(z|x) || N(0, I)) (Kingma & Welling 2014, appendix B)."""
    recon = F.binary_cross_entropy_with_logits(logits, xs, reduction="sum")
    kl = 0.0 if mu is None else -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp())
    return (recon + kl) / len(xs)
