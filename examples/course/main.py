"""The assignment's main.py, its Loss filled in as a student would. aelab imports it (not as
__main__), builds Loss(decode_type=...) and calls it as train_epoch below does:
loss(xs, x_) for the AE, loss(xs, x_, mu, log_var, epoch, epoch_num) for the VAE and CVAE.
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn


class Loss(nn.Module):
    def __init__(self, decode_type="AE", **kwargs) -> None:
        super(Loss, self).__init__()
        self.decode_type = decode_type

    def recon_loss(self, x, x_):
        # 重构损失: 每张图的像素求和, 再对 batch 取平均
        return F.binary_cross_entropy_with_logits(x_, x, reduction="sum") / x.shape[0]

    def kl_div(self, mu, log_var):
        # KL(N(mu, sigma^2) || N(0, I)), 对维度求和, 对 batch 取平均
        return -0.5 * torch.sum(1 + log_var - mu.pow(2) - log_var.exp()) / mu.shape[0]

    def forward(self, x, x_, mu=None, log_var=None, epoch=0, epoch_num=1, **otherinputs):
        recon = self.recon_loss(x, x_)
        if self.decode_type == "AE":
            return recon
        return recon + self.kl_div(mu, log_var)


def train_epoch(model, train_loader, loss, optimizer, epoch, type, epoch_num):
    model.train()
    for x, y in train_loader:
        x = x.reshape(x.shape[0], -1)
        optimizer.zero_grad()
        if type == "AE":
            z, x_ = model(x)
            loss_num = loss(x, x_)
        elif type == "VAE":
            x_, mu, log_var, z = model(x)
            loss_num = loss(x, x_, mu, log_var, epoch, epoch_num)
        else:
            x_, mu, log_var, z = model(x, y)
            loss_num = loss(x, x_, mu, log_var, epoch, epoch_num)
        loss_num.backward()
        optimizer.step()


parser = argparse.ArgumentParser()
parser.add_argument("--type", default="VAE", choices=["AE", "VAE", "CVAE"])
parser.add_argument("--epoch_num", type=int, default=10)
args = parser.parse_args()

if __name__ == "__main__":
    from data import get_loaders  # the assignment's data.py (torchvision's MNIST)
    from model import AutoEncoder, ConditionalVariationalAutoEncoder, Decoder, Encoder, VariationalAutoEncoder

    model_args = {"x_dim": 784, "hidden_size": 400, "latent_size": 20, "decode_type": args.type,
                  "is_dist": args.type != "AE"}
    classes = {"AE": AutoEncoder, "VAE": VariationalAutoEncoder, "CVAE": ConditionalVariationalAutoEncoder}
    model = classes[args.type](Encoder(**model_args), Decoder(**model_args))
    loss = Loss(decode_type=args.type)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_loader, test_loader = get_loaders(batch_size=128)
    for epoch in range(args.epoch_num):
        train_epoch(model, train_loader, loss, optimizer, epoch, args.type, args.epoch_num)
