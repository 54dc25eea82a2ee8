"""The first steps of a model at Burda et al.'s Table 1 protocol (784-200-200-50, tanh, batch
20, Adam eps 1e-4), one thread: every 100 steps, the batch's reconstruction term and KL, the
encoder's mean log-variance, and how much its means differ across the batch's images (the
spread of E[z|x] over images, averaged over dimensions; z1's, with two stochastic layers): near
0, the code carries nothing.

    .venv/bin/python experiments/plateau_probe.py [--steps 1200] [--case SETS ...]

Each `--case` is one model, its sets separated by commas; the default cases are the VAE and
the VampPrior, each with the KL on and off (`model.objective.beta=0`), and the VampPrior with
pseudo-inputs that start as training images. docs/experiments/zoo.md
reads them: every model sits on a plateau for about 1,000 steps, and the VampPrior's KL keeps it
there.
"""

from __future__ import annotations

import argparse
import re

import torch

from aelab import config, registry
from aelab.config import CONFIG_DIR
from aelab.data.splits import Batch

PROTOCOL = ["train.batch_size=20", "train.adam_eps=1e-4"]
CASES = ["", "model.objective.beta=0", "model.prior.name=vamp", "model.prior.name=vamp,model.objective.beta=0",
         "model.prior.name=vamp,model.prior.start=data"]


def probe(sets: list[str], steps: int) -> list[tuple]:
    cfg = config.load(CONFIG_DIR / "iwae_table1_vae.toml", PROTOCOL + sets)
    data = registry.build_data(cfg)
    torch.manual_seed(0)
    model = registry.build_model(cfg, data.image_shape, data.num_classes)
    model.prior.start(data.train.images, torch.Generator().manual_seed(2))
    opt = registry.build_optimizer(cfg, model.parameters())
    g = torch.Generator().manual_seed(1)
    rows = []
    for i in range(1, steps + 1):
        pick = torch.randint(len(data.train.images), (cfg.train.batch_size,), generator=g)
        x = torch.bernoulli(data.train.images[pick].float() / 255, generator=g)  # dynamic binarisation
        parts = model.loss(Batch(x, data.train.labels[pick]))
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        if i % 100 == 0:
            with torch.no_grad():
                q = model.encode(x)
            low = getattr(q, "bottom", q)  # two stochastic layers: z1's Gaussian
            rows.append((i, parts["recon"].item(), parts["kl"].item(), low.logvar.mean().item(), low.mean.std(0).mean().item()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--case", action="append",
                        help="one model's sets, comma-separated (a list's own commas, inside [], stay) (repeatable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for case in args.case or CASES:
        print(f"== {case or 'the VAE as configured'}")
        print(" step   recon      kl  logvar  spread of E[z|x]")
        for step, recon, kl, logvar, spread in probe([s for s in re.split(r",(?![^\[]*\])", case) if s], args.steps):
            print(f"{step:5d}  {recon:6.1f}  {kl:6.2f}  {logvar:6.2f}  {spread:.3f}")


if __name__ == "__main__":
    main()
