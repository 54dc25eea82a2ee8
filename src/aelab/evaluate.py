"""Test-set metrics of a trained run. The test split is used here and nowhere else."""

from __future__ import annotations

import torch

from . import registry
from .data import ImageData
from .model import Autoencoder
from .rundir import UNITS, RunDir

EVAL_SEED = 1234  # the noise of z ~ q(z|x) (and of input corruption) during evaluation

# loss-dict key -> the name it is reported under
NAMES = {"loss": "loss", "recon": "recon_nats", "kl": "kl", "neg_elbo": "neg_elbo", "mse": "mse"}


@torch.no_grad()
def test_metrics(model: Autoencoder, data: ImageData, batch_size: int = 1000) -> dict[str, float]:
    """Each part of `model.loss` averaged over the test images, with the KL at full weight."""
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(EVAL_SEED)
        for batch in data.eval_batches(data.test, batch_size):
            for k, v in model.loss(batch).items():
                sums[k] = sums.get(k, 0) + v.double() * len(batch.y)
    return {NAMES.get(k, k): v.item() / len(data.test) for k, v in sums.items()}


def load_model(run: RunDir, which: str = "best"):
    """(model, cfg, payload) of a run's checkpoint `which`, on the run's device; no data is read."""
    payload, cfg = run.checkpoint(which)
    shape = payload["data"]
    model = registry.build_model(cfg, tuple(shape["image_shape"]), int(shape["num_classes"]))
    run.load_model(model, payload, run.best_path if which == "best" else run.last_path)
    return model.to(registry.device(cfg)), cfg, payload


def evaluate_run(run: RunDir, data: ImageData | None = None) -> dict:
    """Test metrics of the run's best checkpoint, written to RUN/eval.json and returned."""
    model, cfg, payload = load_model(run, "best")
    data = (data if data is not None else registry.build_data(cfg)).to(registry.device(cfg))
    metrics = test_metrics(model, data, cfg.train.eval_batch_size)
    record = {
        "run": str(run.path),
        "kind": cfg.model.kind,
        "dataset": cfg.data.name,
        "binarize": cfg.data.binarize,
        "split": "test",
        "n_images": len(data.test),
        "checkpoint": "best.pt",
        "epoch": int(payload["epoch"]),
        **{k: round(v, 6) for k, v in metrics.items()},
        "units": UNITS,
    }
    run.write_json(run.eval_path, record)
    return record
