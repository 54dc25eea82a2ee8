"""The MLP VAE's training step with nothing of aelab around it: the bound eager PyTorch sets
on this machine, to hold aelab's step (benchmarks/profile_step.py) and its floor (`aelab bench`)
against.

    python benchmarks/bare_step.py [--steps 300] [--compile]

The 784-400-20 VAE as bare tensors (`F.linear`, BCE with logits, the closed-form KL, fused
Adam) on random uint8 digits at batch 128, three ways: float32; bfloat16 autocast (float32
weights cast each forward pass, as aelab trains); bfloat16 weights kept between steps (float32
masters in Adam, gradients cast up and weights cast down once a step); and beside them aelab's
own step of `vae_mnist.toml` on real digits (`model.loss` under the precision `auto` chooses,
backward, the config's Adam), its batches made beforehand. Then the step's eleven matrix
products back to back, in both precisions. Milliseconds a step, each after 20 steps of
warm-up; every way twice, alternating. With --compile, also the bare step with its loss and
`Adam.step` through `torch.compile` (inductor, static shapes; foreach Adam, as inductor
compiles it), in float32 and under bfloat16 autocast, the compiling inside the warm-up.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

B, LAYERS = 128, [(784, 400), (400, 40), (20, 400), (400, 784)]


def _params() -> list[torch.Tensor]:
    out = []
    for fan_in, fan_out in LAYERS:
        w = torch.empty(fan_out, fan_in)
        torch.nn.init.kaiming_uniform_(w, a=5 ** 0.5)
        out += [w.requires_grad_(), torch.zeros(fan_out, requires_grad=True)]
    return out


def _loss(x: torch.Tensor, p: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    w1, b1, w2, b2, w3, b3, w4, b4 = p
    s = F.linear(F.relu(F.linear(x, w1, b1)), w2, b2).float()
    mu, logvar = s[:, :20], s[:, 20:]
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    logits = F.linear(F.relu(F.linear(z.to(dtype), w3, b3)), w4, b4).float()
    rec = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="sum") / len(x)
    return rec - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)


def _step_fn(mode: str, p: list[torch.Tensor], opt: torch.optim.Optimizer):
    if mode == "float32":
        def step(x):
            loss = _loss(x.float() / 255, p, torch.float32)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    elif mode == "bfloat16 autocast":
        def step(x):
            with torch.autocast("cpu", torch.bfloat16):
                loss = _loss(x.float() / 255, p, torch.bfloat16)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        low = [q.detach().to(torch.bfloat16).requires_grad_() for q in p]

        def step(x):
            loss = _loss((x.float() / 255).to(torch.bfloat16), low, torch.bfloat16)
            for q in low:
                q.grad = None
            loss.backward()
            for master, q in zip(p, low):
                master.grad = q.grad.float()
            opt.step()
            with torch.no_grad():
                for master, q in zip(p, low):
                    q.copy_(master)
    return step


def _compiled_step_fn(mode: str, p: list[torch.Tensor], opt: torch.optim.Optimizer):
    dtype = torch.bfloat16 if "bfloat16" in mode else torch.float32

    def loss_of(x):
        with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
            return _loss(x.float() / 255, p, dtype)

    loss_of = torch.compile(loss_of, dynamic=False)
    update = torch.compile(opt.step, dynamic=False)

    def step(x):
        loss = loss_of(x)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        update()
    return step


def _ms_a_step(step, batches, steps: int) -> float:
    """Milliseconds a call of step(batch), over `steps` calls after 20 of warm-up."""
    for i in range(20):
        step(batches[i])
    start = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    return (time.perf_counter() - start) / steps * 1e3


def step_ms(mode: str, images: torch.Tensor, steps: int) -> float:
    p = _params()
    if mode.startswith("compiled"):
        step = _compiled_step_fn(mode, p, torch.optim.Adam(p, lr=1e-3, foreach=True))
    else:
        step = _step_fn(mode, p, torch.optim.Adam(p, lr=1e-3, fused=True))
    return _ms_a_step(step, images.split(B), steps)


def aelab_step_ms(steps: int, sets: tuple[str, ...] = ()) -> float:
    """aelab's training step of vae_mnist.toml (with `sets`) at batch 128, as training runs it, minus the loop."""
    from aelab import config, hardware, registry
    from aelab.config import CONFIG_DIR

    cfg = config.load(CONFIG_DIR / "vae_mnist.toml", list(sets))
    data = registry.build_data(cfg)
    device = torch.device("cpu")
    model = registry.build_model(cfg, data.image_shape, data.num_classes).train()
    opt = registry.build_optimizer(cfg, model.parameters())
    precision = hardware.precision(cfg.train.precision, device)
    epoch = data.train_batches(B, torch.Generator().manual_seed(0))
    batches = [next(epoch) for _ in range(min(steps + 20, len(data.train) // B))]

    def step(batch):
        with hardware.autocast(precision, device):
            loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _ms_a_step(step, batches, steps)


def products_ms(dtype: torch.dtype, repeat: int = 300) -> float:
    shapes = []
    for j, (fan_in, fan_out) in enumerate(LAYERS):
        shapes += [(B, fan_in, fan_out), (fan_out, B, fan_in)] + ([] if j == 0 else [(B, fan_out, fan_in)])
    mats = [(torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for m, k, n in shapes]
    for _ in range(50):
        for a, b in mats:
            torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeat):
        for a, b in mats:
            torch.mm(a, b)
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--compile", action="store_true", help="also the step through torch.compile")
    args = p.parse_args()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (B * 400, 784), dtype=torch.uint8)
    print(f"batch {B}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for _ in range(2):
        for mode in ["float32", "bfloat16 autocast", "bfloat16 weights"] + (
                ["compiled float32", "compiled bfloat16"] if args.compile else []):
            print(f"  {mode:<18} {step_ms(mode, images, args.steps):6.2f} ms a step", flush=True)
        print(f"  {'aelab vae_mnist':<18} {aelab_step_ms(args.steps):6.2f} ms a step", flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        print(f"  the step's products alone, {str(dtype)[6:]:<8} {products_ms(dtype):6.2f} ms")


if __name__ == "__main__":
    main()
