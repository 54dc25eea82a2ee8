"""How long one training step of a config takes on this machine, at several batch sizes: the
figure that decides which batch a time budget should use (on a CPU an epoch often costs the
same at a small batch as at a large one, and the small batch makes more updates).

    .venv/bin/python benchmarks/step_time.py CONFIG [--batch 16 64] [--threads N] [--set KEY=VALUE ...]

Times forward, backward and the optimizer step on random inputs of the config's image shape
(Bernoulli-binarised for Bernoulli likelihoods), in the precision `auto` chooses here, after
warm-up steps; prints ms a step and the seconds an epoch of N images would take.
"""

from __future__ import annotations

import argparse
import time

import torch

from aelab import config, hardware, registry
from aelab.bench import sync
from aelab.data.splits import Batch


def step_ms(cfg, shape: tuple[int, ...], classes: int, batch: int, repeat: int) -> float:
    torch.manual_seed(0)
    device = hardware.device(cfg.train.device)  # the device training would use: a GPU where there is one
    model = registry.build_model(cfg, shape, classes).to(device)
    opt = registry.build_optimizer(cfg, model.parameters())
    autocast = hardware.autocast(hardware.precision(cfg.train.precision, device), device)
    x = torch.rand(batch, *shape, device=device)
    if cfg.model.likelihood.name == "bernoulli":
        x = torch.bernoulli(x)
    y = torch.arange(batch, device=device) % classes

    def step():
        with autocast:
            loss = model.loss(Batch(x, y), progress=1.0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(max(3, repeat // 5)):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        step()
    sync(device)
    return (time.perf_counter() - t) / repeat * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--batch", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's own choice)")
    p.add_argument("--images", type=int, default=0, help="images an epoch (default: the config's training split)")
    p.add_argument("--repeat", type=int, default=0, help="timed steps (default: about 2 s of steps)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = config.load(a.config, a.set)
    data = registry.build_data(cfg)  # the image shape, the classes and the training split's size, as training sees them
    shape, classes, images = data.image_shape, data.num_classes, a.images or len(data.train)
    device = hardware.device(cfg.train.device)
    print(f"{a.config}: {device}, {torch.get_num_threads()} thread(s), {hardware.precision(cfg.train.precision, device)}")
    for b in a.batch:
        repeat = a.repeat or max(10, int(2000 / step_ms(cfg, shape, classes, b, 3)))
        ms = step_ms(cfg, shape, classes, b, repeat)
        print(f"batch {b:4d}: {ms:8.2f} ms a step, {ms * images / b / 1e3:7.2f} s an epoch of {images} images")


if __name__ == "__main__":
    main()
