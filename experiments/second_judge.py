"""A second, independent judge of a CVAE's samples: an MLP (784-512-256-10, ReLU, dropout
0.2) trained here for 8 epochs on the 60,000 MNIST training digits, unlike the reference
classifier (a CNN). It judges the same 10,000 samples `aelab eval` does (1,000 per label,
seed 0), so a gain in `cond_acc` that is only a match with one classifier shows up here.

    .venv/bin/python experiments/second_judge.py RUN [RUN ...]

Prints both judges' accuracy on the real test digits, per label (what a sample as clean as a
real digit would score), then per run the share of samples the MLP assigns to the label asked
for, overall and for the weakest label.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from aelab.data import sources as datasets
from aelab.evaluation import classifier
from aelab.evaluation.evaluate import load_model
from aelab.runs.rundir import RunDir


def _flat(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255).flatten(1)


def judge() -> tuple[nn.Module, float]:
    torch.manual_seed(0)
    a = datasets.load_mnist("")
    x, y = _flat(a.train_images), torch.from_numpy(np.array(a.train_labels, dtype=np.int64))
    net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 256), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(8):
        for idx in torch.randperm(len(x)).split(128):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(_flat(a.test_images)).argmax(1).numpy() == np.asarray(a.test_labels)).mean()
    return net, float(acc)


@torch.no_grad()
def per_label_on_real(net: nn.Module, flat: bool) -> list[float]:
    """The judge's accuracy on the real test digits of each label."""
    a = datasets.load_mnist("")
    x = _flat(a.test_images) if flat else _flat(a.test_images).view(-1, 1, 28, 28)
    y = torch.from_numpy(np.array(a.test_labels, dtype=np.int64))
    hits = net.eval()(x).argmax(1) == y
    return [hits[y == c].float().mean().item() for c in range(10)]


@torch.no_grad()
def cond_acc(net: nn.Module, run: str) -> tuple[float, int, float]:
    model, _, _ = load_model(RunDir.open(run), "best")
    model = model.cpu()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat_interleave(1000)
    preds = torch.cat([net(model.sample(1000, y, generator=g).flatten(1)).argmax(1) for y in labels.split(1000)])
    hits = preds == labels
    per = [hits[labels == c].float().mean().item() for c in range(10)]
    weakest = min(range(10), key=per.__getitem__)
    return hits.float().mean().item(), weakest, per[weakest]


if __name__ == "__main__":
    net, acc = judge()
    print(f"second judge (MLP) test accuracy {acc:.4f}")
    reference, _ = classifier.reference_classifier(datasets.load_mnist(""), "mnist", classifier.ClassifierConfig())
    for name, j, flat in (("reference classifier (CNN)", reference, False), ("second judge (MLP)", net, True)):
        print(f"{name} on real test digits, per label: " + " ".join(f"{v:.3f}" for v in per_label_on_real(j, flat)))
    for run in sys.argv[1:]:
        overall, weakest, worst = cond_acc(net, run)
        print(f"{run}: cond_acc by the MLP {overall:.4f}, weakest label {weakest} {worst:.3f}")
