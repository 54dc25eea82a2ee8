"""How far a folder model's test PSNR would move on another set of the same photos: the mean
PSNR of its reconstructions on the test photos and on the validation photos held out of the
training folder (never trained on; used only to choose the checkpoint and settings), with the
spread over photos and the standard error of each mean.

    .venv/bin/python experiments/split_psnr.py RUN [--latent-sigma S]

With --latent-sigma the channel adds noise of that sd to the codes (seeded), as
`aelab eval RUN --latent-sigma S` does; the test mean then matches that command's PSNR up to
the noise drawn. Means are over photos of 10 log10(1 / mse) in dB, mse per pixel on [0, 1].
"""

from __future__ import annotations

import argparse

import torch

from aelab import hardware, registry
from aelab.evaluation.evaluate import load_model
from aelab.evaluation.metrics import psnr_per_image
from aelab.runs.rundir import RunDir


def split_psnr(model, data, split) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([psnr_per_image(model.reconstruct(b.x, b.y), b.x) for b in data.eval_batches(split, 250)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--latent-sigma", type=float, default=0.0)
    args = p.parse_args()
    model, cfg, _ = load_model(RunDir.open(args.run), "best")
    data = registry.build_data(cfg).to(hardware.device(cfg.train.device))
    torch.manual_seed(0)
    print(f"{args.run}, channel noise sigma {args.latent_sigma} at evaluation (PSNR in dB, mean over photos)")
    for name, split in (("test", data.test), ("validation", data.val)):
        if len(split) < 2:
            print(f"  {name:10s} (fewer than 2 photos)")
            continue
        with model.channel.noise_at(args.latent_sigma):
            v = split_psnr(model, data, split)
        print(f"  {name:10s} {len(v):5d} photos  PSNR {v.mean():6.2f}  sd {v.std():5.2f}  "
              f"standard error of the mean {v.std() / len(v) ** 0.5:.2f}")


if __name__ == "__main__":
    main()
