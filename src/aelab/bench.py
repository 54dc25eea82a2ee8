"""`aelab bench`: how fast aelab trains and evaluates, against the hardware's floor and
against the loop most users write, all measured in one process and one run.

Floor: the matrix products of an epoch (from the model's layer shapes), each timed on this
machine at its own shape in the precision training runs them in (bfloat16 where `auto` trains
in it; the float32 floor beside it); everything else a step does (activations, the loss, the
optimizer) is overhead above the floor. The dogs model's epoch (`--dogs`) has its floor too: every
convolution and matrix product one of its steps calls (GDN's 1x1 convolutions included), recorded
while the step runs and each timed on its own at the step's own shapes, layout and precision,
times the epoch's steps. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import tempfile
import time

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from aelab import config, hardware, registry
from aelab.config import CONFIG_DIR
from aelab.data.splits import Batch
from aelab.evaluation.evaluate import loss_parts
from aelab.evaluation.metrics import nll_importance_sampled
from aelab.training import train
from aelab.runs.rundir import RunDir


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _sig(seconds: float) -> float:
    """Three significant figures: a GPU's floors are milliseconds, a CPU's seconds."""
    return float(f"{seconds:.3g}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn, repeat: int, device: torch.device) -> float:
    """Seconds of one call of `fn` on `device`, the best of `repeat` after one to warm up."""
    fn()
    sync(device)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _time_mm(m: int, k: int, n: int, repeat: int, device: torch.device = torch.device("cpu"),
             dtype: torch.dtype = torch.float32) -> float:
    """Seconds for one (m x k) @ (k x n) product of `dtype` on `device`, best of `repeat`."""
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    return _best(lambda: torch.mm(a, b), repeat, device)


def training_floor(model, batch: int, images: int, repeat: int = 20,
                   dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """FLOPs of an epoch's matrix products and the time they take here at the model's shapes,
    as products of `dtype`. Per linear layer (in -> out) and step: forward B x in x out;
    backward the weight gradient (same size) and, except for the first layer, the input
    gradient (same size again)."""
    flops, seconds, first = 0.0, 0.0, True
    for layers in (_linears(model.encoder), _linears(model.decoder)):
        for i, lin in enumerate(layers):
            fan_in, fan_out = lin.in_features, lin.out_features
            products = [(batch, fan_in, fan_out), (fan_out, batch, fan_in)]  # forward, weight grad
            if not (first and i == 0):
                products.append((batch, fan_out, fan_in))  # input grad
            for m, k, n in products:
                flops += 2 * m * k * n
                seconds += _time_mm(m, k, n, repeat, next(model.parameters()).device, dtype)
        first = False
    steps = images / batch
    return {"flops": flops * steps, "seconds": seconds * steps, "gflops": flops / seconds / 1e9}


def nll_floor(model, images: int, k: int, rows: int, repeat: int = 5) -> dict[str, float]:
    """The decoder's forward products for images x K codes, timed at the chunk's row count."""
    flops = seconds = 0.0
    for lin in _linears(model.decoder):
        flops += 2 * rows * lin.in_features * lin.out_features
        seconds += _time_mm(rows, lin.in_features, lin.out_features, repeat, next(model.parameters()).device)
    chunks = images * k / rows
    return {"flops": flops * chunks, "seconds": seconds * chunks}


class PerSampleDigits(torch.utils.data.Dataset):
    """The usual user-written dataset: one float tensor per __getitem__."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i].astype("float32") / 255).unsqueeze(0), int(self.labels[i])


def reference_loop(cfg, data, epochs: int) -> list[float]:
    """The same model trained the way most users write it: DataLoader over a per-sample
    Dataset, plain Adam, `.item()` every step, each batch moved to the device. Returns
    seconds per epoch."""
    torch.manual_seed(cfg.train.seed)
    device = hardware.device(cfg.train.device)
    model = registry.build_model(cfg, data.image_shape, data.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    images = data.train.images[:, 0].numpy()
    loader = torch.utils.data.DataLoader(PerSampleDigits(images, data.train.labels.numpy()),
                                         batch_size=cfg.train.batch_size, shuffle=True)
    times = []
    for _ in range(epochs):
        start, total = time.perf_counter(), 0.0
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = model.loss(Batch(x.to(device), y.to(device)))["loss"]
            loss.backward()
            opt.step()
            total += loss.item()
        times.append(time.perf_counter() - start)
    return times


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class _Products(TorchFunctionMode):
    """Records every convolution and linear map a forward pass calls (modules' and functional
    ones alike, GDN's 1x1 convolution included): the function and its tensors' shapes."""

    FUNCTIONS = (nn.functional.conv2d, nn.functional.conv_transpose2d, nn.functional.linear)

    def __init__(self):
        super().__init__()
        self.calls: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FUNCTIONS:
            self.calls.append((func, args, kwargs))
        return func(*args, **kwargs)


def _fresh(t, grad: bool):
    """A random tensor of `t`'s shape, dtype, device and memory layout (or `t` itself if not a tensor)."""
    if not isinstance(t, torch.Tensor):
        return t
    layout = torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format
    return torch.randn(t.shape, dtype=t.dtype, device=t.device).contiguous(memory_format=layout).requires_grad_(grad)


def step_floor(model, batch: torch.Tensor, precision: str, repeat: int = 10) -> dict[str, float]:
    """FLOPs and seconds of one training step's convolutions and matrix products, each timed
    here on its own at the model's own shapes, layout and precision (under the same autocast):
    the forward pass, and the backward pass's weight gradient and, except for the first layer
    (whose input is the data), input gradient. What a step does besides them (activations,
    GDN's elementwise work, the loss, the optimizer) is overhead above this floor."""
    device = batch.device
    recorder = _Products()
    with torch.no_grad(), hardware.autocast(precision, device), recorder:
        model.loss(Batch(batch, None))
    flops, seconds = 0.0, 0.0
    for i, (func, args, kwargs) in enumerate(recorder.calls):
        x = _fresh(args[0], grad=i > 0)
        w = _fresh(args[1], grad=True)
        rest = [_fresh(a, grad=True) if isinstance(a, torch.Tensor) else a for a in args[2:]]
        with hardware.autocast(precision, device):
            seconds += _best(lambda: func(x, w, *rest, **kwargs), repeat, device)
            out = func(x, w, *rest, **kwargs)
        wants = [t for t in (x, w) if t.requires_grad]
        grad = torch.randn_like(out)
        seconds += _best(lambda: torch.autograd.grad(out, wants, grad, retain_graph=True), repeat, device)
        # each output of a convolution or linear map takes w[0].numel() products; each input of a
        # transposed convolution gives that many
        macs = (x if func is nn.functional.conv_transpose2d else out).numel() * w[0].numel()
        flops += 2 * macs * (1 + len(wants))
    return {"flops": flops, "seconds": seconds}


def dogs_epoch(quick: bool = False, sets: tuple[str, ...] = ()) -> dict:
    """Seconds of one training epoch of the dogs model (configs/dogs_ae.toml: a conv AE on
    64x64 photos) in the precision `auto` chooses here (or `sets` choose), validation
    excluded; and its floor, the step's convolutions and matrix products timed on their own
    (step_floor) times the epoch's steps."""
    sets = ["train.epochs=2", *sets] + (["data.train_size=256", "data.val_size=64"] if quick else [])
    cfg = config.load(CONFIG_DIR / "dogs_ae.toml", sets)
    data = registry.build_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp + "/run", cfg)
        state = train.fit(cfg, run, data, train.Options(progress=False))
        rows = run.metrics()
    device = hardware.device(cfg.train.device)
    precision = hardware.precision(cfg.train.precision, device)
    epoch_s = rows[1]["step_seconds"] - rows[0]["step_seconds"]
    b = cfg.train.batch_size
    x = data.to(device).train.images[:b].float().div(255)
    floor = step_floor(state.model.train(), x, precision)
    steps = data.steps_per_epoch(b)
    return {"dogs_images": len(data.train), "dogs_precision": precision,
            "dogs_epoch_s_first": rows[0]["step_seconds"], "dogs_epoch_s": round(epoch_s, 3),
            "dogs_epoch_gflop": round(floor["flops"] * steps / 1e9, 1),
            "dogs_epoch_floor_s": _sig(floor["seconds"] * steps),
            "dogs_epoch_floor_ratio": round(epoch_s / (floor["seconds"] * steps), 2)}


def bench(epochs: int = 3, ref_epochs: int = 2, k: int = 5000, quick: bool = False, dogs: bool | None = None) -> dict:
    sets = [f"train.epochs={epochs}"] + (["data.train_size=6400"] if quick else [])
    cfg = config.load(CONFIG_DIR / "vae_mnist.toml", sets)
    data = registry.build_data(cfg)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    device = hardware.device(cfg.train.device)
    precision = hardware.precision(cfg.train.precision, device)
    log(f"aelab training {len(data.train)} images x {epochs} epochs on {device} in {precision}, "
        f"{torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp + "/run", cfg)
        state = train.fit(cfg, run, data, train.Options(progress=False))
        times = [r["seconds"] for r in run.metrics()]
    model = state.model.eval()
    timed = times[1:] or times
    epoch_s = statistics.median(timed)
    floor32 = training_floor(model, cfg.train.batch_size, len(data.train))
    floor = floor32 if precision == "float32" else training_floor(model, cfg.train.batch_size, len(data.train),
                                                                   dtype=hardware.PRECISIONS[precision])
    test = loss_parts(model, data.to(next(model.parameters()).device), cfg.train.eval_batch_size)
    log(f"reference loop (DataLoader, per-sample Dataset, .item() each step): {ref_epochs} epochs")
    ref = reference_loop(cfg, data, ref_epochs)
    ref_s = statistics.median(ref)

    test_images = 1000 if quick else len(data.test)
    k = 10 if quick else k
    rows = 25_000
    log(f"nll_is with K={k} on {test_images} test images")
    batches = list(data.eval_batches(data.test, cfg.train.eval_batch_size))[: max(1, test_images // cfg.train.eval_batch_size)]
    batches = [type(b)(b.x.to(device), b.y.to(device)) for b in batches]
    start = time.perf_counter()
    with torch.no_grad():
        nll = nll_importance_sampled(model, batches, k, rows_per_chunk=rows)
    sync(device)
    nll_s = time.perf_counter() - start
    nfloor = nll_floor(model, test_images, k, rows)
    extra = {}
    if dogs if dogs is not None else device.type != "cpu":  # default: on a GPU, where an epoch takes seconds
        log("one epoch of the dogs model (configs/dogs_ae.toml)")
        extra = dogs_epoch(quick)
    return {
        "config": "vae_mnist.toml", "quick": quick, "device": str(device), "precision": precision,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "train_images": len(data.train), "epochs": epochs,
        "epoch_s_first": round(times[0], 3), "epoch_s_median": round(epoch_s, 3),
        "images_per_s": round(len(data.train) / epoch_s),
        "epoch_gflop": round(floor["flops"] / 1e9, 1), "gemm_gflops": round(floor["gflops"], 1),
        "floor_precision": precision, "epoch_floor_s": _sig(floor["seconds"]),
        "epoch_floor_ratio": round(epoch_s / floor["seconds"], 2), "epoch_floor_float32_s": _sig(floor32["seconds"]),
        "test_loss": round(test["loss"], 3), "peak_mem_mb": round(peak_memory_mb()),
        "reference_epoch_s": round(ref_s, 3), "speedup_vs_reference": round(ref_s / epoch_s, 2),
        "nll_k": k, "nll_images": test_images, "nll_is": round(nll, 3), "nll_s": _sig(nll_s),
        "nll_floor_s": _sig(nfloor["seconds"]), "nll_floor_ratio": round(nll_s / nfloor["seconds"], 2),
        **extra,
    }


def add_arguments(p) -> None:
    p.add_argument("--epochs", type=int, default=3, help="aelab epochs (the first is reported apart)")
    p.add_argument("--ref-epochs", type=int, default=2, help="epochs of the reference loop")
    p.add_argument("--k", type=int, default=5000, help="importance samples per test image")
    p.add_argument("--quick", action="store_true", help="a few hundred steps: checks that it runs, not how fast")
    p.add_argument("--dogs", action=argparse.BooleanOptionalAction, default=None,
                   help="also time an epoch of the dogs model (default: on a GPU only; it needs ../shared/data/dogs64)")


def run(args) -> int:
    print(json.dumps(bench(args.epochs, args.ref_epochs, args.k, args.quick, args.dogs)))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m aelab.bench", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
