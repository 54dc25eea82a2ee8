"""Where a training step's time goes: the shipped MLP VAE's step (forward under the precision
`auto` chooses, loss, backward, Adam) under torch.profiler, as training.train runs it.

    python benchmarks/profile_step.py [--steps 200] [--config vae_mnist.toml] [--precision auto]

Prints the milliseconds per step of each phase (forward and loss, backward, optimizer, the
loop's bookkeeping), then the operators by their own CPU time.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from aelab import config, hardware, registry
from aelab.config import CONFIG_DIR


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--config", default="vae_mnist.toml")
    p.add_argument("--precision", default="auto")
    p.add_argument("--rows", type=int, default=25, help="operators to list")
    args = p.parse_args()
    cfg = config.load(CONFIG_DIR / args.config, [f"train.precision={args.precision}"])
    data = registry.build_data(cfg)
    device = hardware.device(cfg.train.device)
    precision = hardware.precision(cfg.train.precision, device)
    torch.manual_seed(0)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).to(device).train()
    opt = registry.build_optimizer(cfg, model.parameters())
    autocast = hardware.autocast(precision, device)
    batches = data.train_batches(cfg.train.batch_size, torch.Generator().manual_seed(0), lambda n: (0, n))
    batches = [next(batches) for _ in range(args.steps + 20)]

    def step(batch, sums):
        with record_function("forward+loss"), autocast:
            out = model.loss(batch, 0.5)
        with record_function("backward"):
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
        with record_function("optimizer"):
            opt.step()
        with record_function("bookkeeping"):
            parts = torch.stack([v.detach() for v in out.values()])
            sums.add_(parts)

    sums = torch.zeros(len(model.loss(batches[0])), device=device)
    for b in batches[:20]:  # warm up
        step(b, sums)
    start = time.perf_counter()
    for b in batches[20:]:
        step(b, sums)
    plain = (time.perf_counter() - start) / args.steps * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for b in batches[20:]:
            step(b, sums)
    events = prof.key_averages()
    print(f"{args.config}, batch {cfg.train.batch_size}, {precision}, {torch.get_num_threads()} threads: "
          f"{plain:.2f} ms a step unprofiled")
    for phase in ("forward+loss", "backward", "optimizer", "bookkeeping"):
        total = sum(e.cpu_time_total for e in events if e.key == phase)
        print(f"  {phase:<14} {total / args.steps / 1e3:6.2f} ms a step (profiled)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
