"""A run's training as TensorBoard event files, under RUN/tensorboard (`train.tensorboard = true`).

What it writes, at the global step (epochs x steps per epoch + the step):
- `train/<part>`: the training loss and its parts, their mean over the steps since the last
  progress sync (every `train.log_every` steps);
- `val/<part>` per epoch, and `schedule/lr`, `schedule/kl_weight` (what the objective's
  schedule reports);
- the images `reconstructions` (a validation batch above its reconstructions) and `samples`
  (decoded prior draws, the same noise every epoch) per epoch;
- at the end of evaluation, the run's settings as hparams with its test metrics, so that
  `tensorboard --logdir runs/` sets runs side by side in the HPARAMS tab.

A resumed run opens the writer with `purge_step` at its checkpoint's step: what the killed
process logged after the checkpoint is dropped when TensorBoard reads the files, so no step
is there twice. Only the main process writes (under torchrun, rank 0).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from aelab import config
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.errors import AelabError
from aelab.parts.autoencoder import Autoencoder

FOLDER = "tensorboard"
IMAGES = 16  # images in each per-epoch grid
ABOUT = {"n_images", "epoch", "eval_batch_size"}  # numbers of eval.json that describe the evaluation, not the model
RESULTS_SUFFIX = ".results"  # the event file of the hparams and test metrics
SAMPLE_SEED = 0  # the prior draws' noise: the same codes every epoch, so their change is the model's


def folder(run_path: Path) -> Path:
    return Path(run_path) / FOLDER


def _writer(path: Path, purge_step: int | None, suffix: str = ""):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # torch's writer needs the tensorboard package
        raise AelabError(f"train.tensorboard needs the tensorboard package ({e}); pip install tensorboard") from None
    return SummaryWriter(log_dir=str(path), purge_step=purge_step, flush_secs=30, filename_suffix=suffix)


def _grid(images: torch.Tensor, columns: int) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (C, rows*H, columns*W), one pixel of white between images."""
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    out = torch.ones(c, rows * (h + 1) - 1, columns * (w + 1) - 1)
    for i, image in enumerate(images.float().clamp(0, 1).cpu()):
        r, k = divmod(i, columns)
        out[:, r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = image
    return out


class Board:
    """The event writer of one run's training; `steps` = training steps per epoch."""

    def __init__(self, run_path: Path, steps: int, resumed_at: int | None = None):
        self.steps = steps
        self.writer = _writer(folder(run_path), None if resumed_at is None else resumed_at + 1)

    def step_of(self, epoch: int, step: int) -> int:
        """The global step of `step` (1-based) in epoch `epoch` (0-based)."""
        return epoch * self.steps + step

    def train(self, global_step: int, means: dict[str, float]) -> None:
        for key, value in means.items():
            self.writer.add_scalar(f"train/{key}", value, global_step)

    def epoch(self, epoch: int, record: dict, model: Autoencoder, data: ImageData) -> None:
        """Epoch `epoch`'s (1-based) validation parts, schedule and images, at its last step."""
        at = self.step_of(epoch, 0)
        for key, value in record.items():
            if key.startswith("val_"):
                self.writer.add_scalar(f"val/{key[4:]}", value, at)
        self.writer.add_scalar("schedule/lr", record["lr"], at)
        if "kl_weight" in record:
            self.writer.add_scalar("schedule/kl_weight", record["kl_weight"], at)
        self.images(at, model, data)
        self.writer.flush()  # before the epoch's checkpoint: a kill after it loses no epoch's record

    def images(self, at: int, model: Autoencoder, data: ImageData) -> None:
        split = data.val if len(data.val) else data.train
        batch = next(data.eval_batches(split, IMAGES))  # the split's first images, every epoch the same
        was = model.training
        model.eval()
        try:
            x = batch.x[:IMAGES]
            recon = model.reconstruct(x, batch.y[:IMAGES])
            columns = min(8, len(x))
            pairs = torch.cat([torch.cat([x[i:i + columns], recon[i:i + columns]]) for i in range(0, len(x), columns)])
            self.writer.add_image("reconstructions", _grid(pairs, columns), at)
            generator = torch.Generator().manual_seed(SAMPLE_SEED)
            self.writer.add_image("samples", _grid(model.sample(IMAGES, generator=generator), 8), at)
        finally:
            model.train(was)

    def close(self) -> None:
        self.writer.close()


class Boards:
    """The TensorBoard writer a run opens, closed (its events flushed) however training ends."""

    def __init__(self):
        self.board: Board | None = None

    def open(self, run_path: Path, steps: int, resumed_at: int | None) -> Board:
        self.board = Board(run_path, steps, resumed_at)
        return self.board

    def __enter__(self) -> "Boards":
        return self

    def __exit__(self, *exc) -> None:
        if self.board:
            self.board.close()


def hparams(cfg: RunConfig, metrics: dict) -> tuple[dict, dict]:
    """The run's settings (every key of its resolved config, so that every run has every
    column; tuples as text) and its numeric test metrics, as TensorBoard's HPARAMS tab takes them."""
    settings = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in config.flat(cfg).items()}
    measured = {f"test/{k}": float(v) for k, v in metrics.items() if k not in ABOUT
                and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return settings, measured


def write_results(run_path: Path, cfg: RunConfig, metrics: dict, global_step: int) -> None:
    """Add the run's settings and test metrics (eval.json's numbers) as hparams to its events,
    at `global_step` (the evaluated checkpoint's), in a file of their own that an evaluation
    again replaces (one set of results per run)."""
    settings, measured = hparams(cfg, metrics)
    path = folder(run_path)
    for old in path.glob(f"*{RESULTS_SUFFIX}"):
        old.unlink()
    from torch.utils.tensorboard.summary import hparams as summaries
    writer = _writer(path, None, RESULTS_SUFFIX)
    try:
        for summary in summaries(settings, measured):  # the experiment, session start and session end
            writer.file_writer.add_summary(summary, global_step)
        for key, value in measured.items():
            writer.add_scalar(key, value, global_step)
    finally:
        writer.close()
