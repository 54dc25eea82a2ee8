"""The assignment's model.py, filled in as a student would: its class names and signatures,
no aelab anywhere. `aelab check examples/course/model.py` runs it as it is.

The encoder gives the mean and the log-variance of q(z|x); the decoder gives the logits of
the pixels (main.py's Loss applies the sigmoid through BCE-with-logits).
"""

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10


def one_hot(ys):
    return F.one_hot(ys, NUM_CLASSES).float()


class Encoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, is_dist=False, **kwargs) -> None:
        super(Encoder, self).__init__()
        in_size = x_dim + (NUM_CLASSES if kwargs.get("decode_type") == "CVAE" else 0)
        self.mu = nn.Sequential(nn.Linear(in_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, latent_size),)
        self.is_dist = is_dist
        if is_dist:  # 如果需要encoder返回的是均值与标准差, 那么我们需要额外引入一次计算标准差的layer
            self.sigma = nn.Sequential(nn.Linear(in_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, latent_size),)

    def forward(self, xs, ys=None):
        if ys is not None:  # CVAE: 标签的 one-hot 拼在图像后面
            xs = torch.cat([xs, one_hot(ys)], dim=1)
        if self.is_dist:
            return self.mu(xs), self.sigma(xs)  # 均值, log 方差
        return self.mu(xs)


class Decoder(nn.Module):
    def __init__(self, x_dim, hidden_size, latent_size, decode_type="AE", **kwargs) -> None:
        super(Decoder, self).__init__()
        self.decode_type = decode_type
        if decode_type == "AE":
            self.decoder = nn.Sequential(nn.Linear(latent_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, x_dim),)
        elif decode_type == "VAE":
            self.decoder = nn.Sequential(nn.Linear(latent_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, x_dim),)
        elif decode_type == "CVAE":
            self.decoder = nn.Sequential(nn.Linear(latent_size + NUM_CLASSES, hidden_size), nn.ReLU(),
                                         nn.Linear(hidden_size, x_dim),)
        else:
            raise NotImplementedError

    def forward(self, zs, **otherinputs):
        if self.decode_type == "CVAE":
            zs = torch.cat([zs, one_hot(otherinputs["ys"])], dim=1)
        return self.decoder(zs)  # logits


class AutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs) -> None:
        super(AutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x):
        z = self.encoder(x)
        x_ = self.decoder(z)
        return z, x_


class VariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs) -> None:
        super(VariationalAutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, xs):
        mu, log_var = self.encoder(xs)
        std = torch.exp(0.5 * log_var)
        z = mu + std * torch.randn_like(std)  # 重参数化
        x_ = self.decoder(z)
        return x_, mu, log_var, z


class ConditionalVariationalAutoEncoder(nn.Module):
    def __init__(self, encoder, decoder, **kwargs) -> None:
        super(ConditionalVariationalAutoEncoder, self).__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, xs, ys):
        mu, log_var = self.encoder(xs, ys)
        std = torch.exp(0.5 * log_var)
        z = mu + std * torch.randn_like(std)
        x_ = self.decoder(z, ys=ys)
        return x_, mu, log_var, z
