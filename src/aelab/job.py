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


def main_job(out: Path, epochs: int | None = None, k: int = 100, deep: bool = True) -> list[dict]:
    results, datasets = [], {}
    for name, file in MAIN_RUNS.items():
        extra = [f"train.epochs={epochs}"] if epochs is not None else []
        cfg = config.load(CONFIG_DIR / file, MAIN_OVERRIDES + extra)
        if cfg.data not in datasets:  # runs on the same data share it in memory
            datasets[cfg.data] = registry.build_data(cfg)
        run = ensure_trained(cfg, out / name, datasets[cfg.data])
        record = evaluate_run(run, datasets[cfg.data], k=k, deep=deep)
        record["train_seconds"] = json.loads(run.done_path.read_text())["train_seconds"]
        results.append(record)
    print(table(results))
    print(f"\nruns and their eval.json: {out}/{{{','.join(MAIN_RUNS)}}}")
    return results


COLUMNS = ["kind", "epoch", "train_seconds", "neg_elbo", "nll_is", "recon_nats", "kl", "mse", "psnr_db", "ssim",
           "active_units", "probe_acc", "cond_acc", "sample_class_entropy", "fd_classifier"]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}"
    return "-" if value is None else str(value)


def table(results: list[dict]) -> str:
    """One row per run; columns that no run has are left out."""
    cols = [c for c in COLUMNS if any(c in r for r in results)]
    rows = [[_cell(r.get(c)) for c in cols] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    binarize = "/".join(sorted({r["binarize"] for r in results}))
    nll_k = {r["nll_k"] for r in results if "nll_k" in r}
    notes = f"; nll_is with K={nll_k.pop()}" if len(nll_k) == 1 else ""
    return "\n".join([f"Test set ({UNITS}; binarize={binarize}{notes}):", *lines])
