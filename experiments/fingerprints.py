"""Fingerprints of every shipped config and every shipped study's runs, to show that a
refactor changed no behaviour.

For each config: the resolved data and train sections, the data it builds (shape, classes,
split sizes, a hash of the training images), the seeded initial weights (a hash of every
tensor) and the loss and its parts on a fixed batch. With --train, two short end-to-end runs
(an MLP VAE on MNIST and the dogs' CNN) whose final weights are hashed.

    python experiments/fingerprints.py --train > before.txt      # on the old tree
    python experiments/fingerprints.py --train > after.txt       # on the new one
    diff before.txt after.txt                                    # nothing

It imports only names that both the flat and the subpackage layout export from `aelab`'s
edges (`aelab.config`, `aelab.registry`) and finds the study loader in either place.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from aelab import config, registry

ROOT = Path(__file__).resolve().parents[1]
DOGS = ROOT.parent / "shared" / "data" / "dogs64"


def _study_module():
    for name in ("aelab.studies.study", "aelab.study"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise SystemExit("no study module found")


def _digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().reshape(-1).numpy().tobytes())
    return h.hexdigest()[:16]


def _with_dogs(cfg):
    """The shipped dogs config names the shared folder relative to the repository."""
    if cfg.data.name == "folder" and not Path(cfg.data.root).is_dir():
        cfg = config.with_overrides(cfg, [f"data.root={DOGS / 'train'}"] +
                                    ([f"data.test_root={DOGS / 'test'}"] if cfg.data.test_root else []))
    return cfg


_DATA: dict[str, tuple] = {}


def _data(cfg):
    key = str(config.flat(cfg.data))
    if key not in _DATA:
        data = registry.build_data(cfg)
        x = data.train.images
        line = (f"shape {tuple(data.image_shape)} classes {data.num_classes} "
                f"train {len(data.train)} val {len(data.val)} test {len(data.test)} "
                f"x {_digest([x])} y {_digest([data.train.labels])}")
        _DATA[key] = (data, line)
    return _DATA[key]


def fingerprint(name: str, cfg) -> list[str]:
    cfg = _with_dogs(cfg)
    data, line = _data(cfg)
    lines = [f"== {name}", "data " + " ".join(f"{k}={v}" for k, v in config.flat(cfg.data).items()),
             "train " + " ".join(f"{k}={v}" for k, v in config.flat(cfg.train).items()),
             "model " + " ".join(f"{k}={v}" for k, v in config.flat(cfg.model).items()), "built " + line]
    torch.manual_seed(cfg.train.seed)
    model = registry.build_model(cfg, data.image_shape, data.num_classes)
    state = model.state_dict()
    lines.append(f"weights {len(state)} tensors {_digest(state.values())}")
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(8, *data.image_shape, generator=g)
    y = torch.randint(0, data.num_classes, (8,), generator=g)
    batch_cls = type(next(iter(data.eval_batches(data.val if len(data.val) else data.test, 8))))
    torch.manual_seed(99)
    model.train()
    parts = model.loss(batch_cls(x, y), progress=0.5)
    lines.append("loss " + " ".join(f"{k}={v.item():.9g}" for k, v in sorted(parts.items())))
    return lines


def train_runs() -> list[str]:
    runs = [("vae", ROOT / "configs" / "vae_mnist.toml",
             ["train.epochs=1", "data.train_size=3000", "data.val_size=500", "train.precision=float32", "train.threads=1"]),
            ("dogs", ROOT / "configs" / "dogs_ae.toml",
             ["train.epochs=1", "train.time_budget_min=0", "data.train_size=256", "data.val_size=64",
              "train.precision=float32", "train.threads=1", f"data.root={DOGS / 'train'}", f"data.test_root={DOGS / 'test'}"])]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, sets in runs:
            out = Path(tmp) / name
            cmd = [sys.executable, "-m", "aelab", "train", str(path), "--out", str(out), "--quiet", "--no-eval"]
            for s in sets:
                cmd += ["--set", s]
            subprocess.run(cmd, check=True, capture_output=True)
            state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)["model"]
            lines.append(f"== trained {name}: {len(state)} tensors {_digest(state.values())}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", action="store_true", help="also two short end-to-end runs")
    args = p.parse_args()
    torch.set_num_threads(1)
    study = _study_module()
    lines = []
    for path in sorted((ROOT / "configs").glob("*.toml")):
        lines += fingerprint(f"config {path.name}", config.load(path))
    for path in sorted((ROOT / "studies").glob("*.toml")):
        for run in study.load(path).runs:
            lines += fingerprint(f"study {path.stem}/{run.name}", run.config)
    if args.train:
        lines += train_runs()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
