"""The main job: AE, VAE and CVAE on MNIST, trained (or found already trained) and evaluated."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import config, registry, train
from .config import RunConfig
from .data import ImageData
from .errors import AelabError
from .evaluate import evaluate_run
from .rundir import UNITS, RunDir

CONFIG_DIR = Path(__file__).parent / "configs"
MAIN_RUNS = {"ae": "ae_mnist.toml", "vae": "vae_mnist.toml", "cvae": "cvae_mnist.toml"}
# The three are compared on identical data, with a validation split for model selection
# (vae_mnist.toml alone trains on all 60,000 images, to reproduce pytorch/examples).
MAIN_OVERRIDES = ["data.val_size=5000"]


def ensure_trained(cfg: RunConfig, path: Path, data: ImageData) -> RunDir:
    """The run of `cfg` at `path`: skipped if complete, resumed if interrupted, else trained."""
    if (path / "config.toml").is_file():
        run = RunDir.open(path)
        changed = config.diff(run.config(), cfg)
        if changed:
            raise AelabError(f"{path}: holds a run of another config ({'; '.join(changed)}); "
                             "remove it or choose another --out")
        if run.is_done():
            print(f"{path}: complete, skipped", file=sys.stderr)
            return run
        if run.last_path.is_file():
            print(f"{path}: interrupted, resuming", file=sys.stderr)
            train.fit(cfg, run, data, resume=True)
            return run
        for stale in path.iterdir():  # created but killed before its first checkpoint
            stale.unlink()
    print(f"{path}: training {cfg.model.kind}", file=sys.stderr)
    train.fit(cfg, RunDir.create(path, cfg), data)
    return RunDir.open(path)


def main_job(out: Path, epochs: int | None = None) -> list[dict]:
    results, datasets = [], {}
    for name, file in MAIN_RUNS.items():
        extra = [f"train.epochs={epochs}"] if epochs is not None else []
        cfg = config.load(CONFIG_DIR / file, MAIN_OVERRIDES + extra)
        if cfg.data not in datasets:  # runs on the same data share it in memory
            datasets[cfg.data] = registry.build_data(cfg)
        run = ensure_trained(cfg, out / name, datasets[cfg.data])
        record = evaluate_run(run, datasets[cfg.data])
        record["train_seconds"] = json.loads(run.done_path.read_text())["train_seconds"]
        results.append(record)
    print(table(results))
    print(f"\nruns and their eval.json: {out}/{{{','.join(MAIN_RUNS)}}}")
    return results


def table(results: list[dict]) -> str:
    cols = ["kind", "epoch", "train_seconds", "loss", "recon_nats", "kl", "neg_elbo", "mse"]
    rows = [[str(r.get(c, "-")) if not isinstance(r.get(c), float) else f"{r[c]:.4f}" if c == "mse"
             else f"{r[c]:.2f}" for c in cols] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    binarize = {r["binarize"] for r in results}
    return "\n".join([f"Test set ({UNITS}; binarize={'/'.join(sorted(binarize))}):", *lines])
