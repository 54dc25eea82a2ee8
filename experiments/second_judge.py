"""Second, independent judges of a CVAE's samples, trained here on the 60,000 MNIST training
digits, each unlike the reference classifier (a CNN of two 3x3 convolutions, 3 epochs, seed 0):

    mlp     784-512-256-10, ReLU, dropout 0.2, 8 epochs of Adam (one cycle to 1e-3), seed 1
    lenet   two 5x5 convolutions (32, 64 channels), max-pooling, 256 hidden units, dropout 0.3,
            6 epochs of Adam (one cycle to 3e-3) on digits shifted by up to 2 pixels, seed 1
    cnn_bn  a 5x5 and two 3x3 convolutions (32, 64, 128 channels) with batch normalisation and
            global average pooling, trained as lenet: kept to show a judge that fails on blur
            (each judge is also measured on real test digits blurred: one that misreads a
            blurred real digit cannot judge samples, which are a likelihood's blurry means)

They judge the same 10,000 samples `aelab eval` does (1,000 per label, generator seed 0), so a
gain in `cond_acc` that is only a match with one classifier shows up here. A judge is trained
once per machine and kept in aelab's cache folder.

    .venv/bin/python experiments/second_judge.py RUN [RUN ...]

Prints each judge's accuracy on the real test digits, overall, per label (what a sample as
clean as a real digit would score) and blurred, then per run the share of samples each judge assigns to
the label asked for, overall and for the weakest label.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from aelab.data import sources as datasets
from aelab.data.cache import cache_dir
from aelab.evaluation import classifier
from aelab.runs.rundir import RunDir


def _images(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255).unsqueeze(1)  # (N, 1, 28, 28)


def _cnn() -> nn.Module:
    def block(a, b, k):
        return [nn.Conv2d(a, b, k, padding=k // 2), nn.BatchNorm2d(b), nn.ReLU()]
    return nn.Sequential(*block(1, 32, 5), nn.MaxPool2d(2), *block(32, 64, 3), nn.MaxPool2d(2), *block(64, 128, 3),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128, 10))


def _lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(256, 10))


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(256, 10))


# name -> (network, seed, largest shift in pixels)
JUDGES = {"mlp": (_mlp, 1, 0), "lenet": (_lenet, 1, 2), "cnn_bn": (_cnn, 1, 2)}


def _shifted(x: torch.Tensor, most: int, g: torch.Generator) -> torch.Tensor:
    """Each image moved by up to `most` pixels in each direction (zeros shifted in)."""
    if not most:
        return x
    padded = nn.functional.pad(x, (most,) * 4)
    dx, dy = torch.randint(0, 2 * most + 1, (2, len(x)), generator=g)
    rows = (torch.arange(28)[None, :] + dy[:, None])[:, :, None]  # (N, 28, 1)
    cols = (torch.arange(28)[None, :] + dx[:, None])[:, None, :]  # (N, 1, 28)
    return padded[torch.arange(len(x))[:, None, None], 0, rows, cols].unsqueeze(1)


def judge(name: str) -> nn.Module:
    """The judge `name`, trained on the training digits (once per machine, then from the cache)."""
    make, seed, shift = JUDGES[name]
    path = cache_dir() / "second_judges" / f"{name}.pt"
    net = make()
    if path.is_file():
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    a = datasets.load_mnist("")
    x, y = _images(a.train_images), torch.from_numpy(np.array(a.train_labels, dtype=np.int64))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    epochs = 8 if name == "mlp" else 6
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3 if name == "mlp" else 3e-3, total_steps=epochs * -(-len(x) // 128))
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(128):
            loss = nn.functional.cross_entropy(net(_shifted(x[idx], shift, g)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net.eval()


@torch.no_grad()
def on_real(net: nn.Module) -> tuple[float, list[float]]:
    """The judge's accuracy on the real test digits, overall and per label."""
    a = datasets.load_mnist("")
    x, y = _images(a.test_images), torch.from_numpy(np.array(a.test_labels, dtype=np.int64))
    hits = torch.cat([net.eval()(b).argmax(1) for b in x.split(1000)]) == y
    return hits.float().mean().item(), [hits[y == c].float().mean().item() for c in range(10)]


@torch.no_grad()
def cond_acc(nets: dict[str, nn.Module], run: str) -> dict[str, tuple[float, int, float]]:
    """Each judge's share of the run's 10,000 samples (as aelab eval draws them) that are the label asked for."""
    model, _, _ = RunDir.open(run).model("best")
    model = model.cpu()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(1000)
    samples = torch.cat([model.sample(1000, y, generator=g) for y in labels.split(1000)])
    out = {}
    for name, net in nets.items():
        hits = torch.cat([net(b).argmax(1) for b in samples.split(1000)]) == labels
        per = [hits[labels == c].float().mean().item() for c in range(10)]
        weakest = min(range(10), key=per.__getitem__)
        out[name] = (hits.float().mean().item(), weakest, per[weakest])
    return out


def _blurred(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images blurred by a Gaussian of `sigma` pixels (a 7x7 kernel, separable)."""
    k = torch.exp(-torch.arange(-3, 4, dtype=torch.float32).pow(2) / (2 * sigma * sigma))
    k = k / k.sum()
    x = nn.functional.conv2d(x, k.view(1, 1, 1, 7), padding=(0, 3))
    return nn.functional.conv2d(x, k.view(1, 1, 7, 1), padding=(3, 0))


@torch.no_grad()
def on_blurred(net: nn.Module, sigma: float) -> float:
    a = datasets.load_mnist("")
    x, y = _blurred(_images(a.test_images), sigma), torch.from_numpy(np.array(a.test_labels, dtype=np.int64))
    return (torch.cat([net.eval()(b).argmax(1) for b in x.split(1000)]) == y).float().mean().item()


if __name__ == "__main__":
    reference, _ = classifier.reference_classifier(datasets.load_mnist(""), "mnist", classifier.ClassifierConfig())
    nets = {"reference": reference.eval(), **{name: judge(name) for name in JUDGES}}
    for name, net in nets.items():
        overall, per = on_real(net)
        blurred = " ".join(f"{on_blurred(net, s):.4f}" for s in (0.5, 1.0, 1.5))
        print(f"{name} on the real test digits: {overall:.4f}; per label " + " ".join(f"{v:.3f}" for v in per)
              + f"; blurred by sigma 0.5, 1, 1.5 px: {blurred}")
    for run in sys.argv[1:]:
        said = cond_acc(nets, run)
        print(f"{run}: " + "; ".join(f"{name} {o:.4f} (weakest {w}: {v:.3f})" for name, (o, w, v) in said.items()))
