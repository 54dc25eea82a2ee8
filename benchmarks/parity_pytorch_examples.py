"""aelab's VAE against the pytorch/examples VAE loop (vae/main.py), seed by seed.

The reference side is that script's training loop written out again (torchvision's MNIST
replaced by the same IDX bytes aelab reads: /255, shuffled DataLoader, batch 128, the summed
BCE + KL loss, Adam 1e-3, 10 epochs, test loss = summed loss / 10,000). Both sides train on
all 60,000 training images and report the test loss in nats per image.

    .venv/bin/python benchmarks/parity_pytorch_examples.py --seeds 0 1 2 [--epochs 10] [--only aelab]

Prints one line per seed and side, then the mean and its standard error per side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aelab import config, registry
from aelab.config import CONFIG_DIR
from aelab.data import sources as datasets
from aelab.evaluation.evaluate import evaluate_run
from aelab.training import train
from aelab.runs.rundir import RunDir


class ReferenceVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def reference_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class Images(torch.utils.data.Dataset):  # per-sample, as torchvision's MNIST is
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i].astype(np.float32) / 255).unsqueeze(0)


def reference(seed: int, epochs: int) -> float:
    torch.manual_seed(seed)
    arrays = datasets.load_mnist("")
    train_loader = torch.utils.data.DataLoader(Images(arrays.train_images), batch_size=128, shuffle=True)
    test_loader = torch.utils.data.DataLoader(Images(arrays.test_images), batch_size=128, shuffle=True)
    model = ReferenceVAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for x in train_loader:
            opt.zero_grad()
            recon, mu, logvar = model(x)
            reference_loss(recon, x, mu, logvar).backward()
            opt.step()
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x in test_loader:
            recon, mu, logvar = model(x)
            total += reference_loss(recon, x, mu, logvar).item()
    return total / len(test_loader.dataset)


def aelab_side(seed: int, epochs: int) -> float:
    cfg = config.load(CONFIG_DIR / "vae_mnist.toml", [f"train.seed={seed}", f"train.epochs={epochs}"])
    data = registry.build_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(f"{tmp}/run", cfg)
        train.fit(cfg, run, data, train.Options(progress=False))
        return evaluate_run(run, data, deep=False)["loss"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--only", choices=["aelab", "pytorch/examples"], help="run one side only")
    args = p.parse_args()
    sides = {"aelab": aelab_side, "pytorch/examples": reference}
    sides = {args.only: sides[args.only]} if args.only else sides
    results: dict[str, list[float]] = {side: [] for side in sides}
    for seed in args.seeds:
        for side, fn in sides.items():
            results[side].append(fn(seed, args.epochs))
            print(json.dumps({"side": side, "seed": seed, "test_loss_nats_per_image": round(results[side][-1], 3)}),
                  flush=True)
    for side, values in results.items():
        sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
        print(f"{side}: mean {statistics.mean(values):.3f} +- {sem:.3f} (standard error) over {len(values)} seeds, "
              f"nats per image (sum over pixels, mean over images)")


if __name__ == "__main__":
    main()
