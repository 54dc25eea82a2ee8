"""The 784-400-20 MNIST VAE's training epoch in aelab, in pytorch/examples' vae/main.py and in
pythae, in one sitting: each side's epochs timed in its own process, one after another.

    .venv/bin/python benchmarks/other_tools.py [--epochs 3] [--rounds 1] [--pythae-python PATH]

- aelab: `configs/vae_mnist.toml` through `train.fit` (precision `auto`); an epoch's seconds
  from metrics.jsonl.
- pytorch/examples: that script's `train()` written out again, with torchvision's MNIST as it
  is (a PIL image per digit, then ToTensor) over the same IDX bytes, `batch_size=128`,
  `shuffle=True`, no workers (the script's CPU setting), Adam 1e-3, the summed BCE + KL,
  `.item()` each step. The script's `test()` and sample images are not timed.
- pythae 0.1.2: `VAE` with the same encoder and decoder (as pythae's BaseEncoder/BaseDecoder),
  `reconstruction_loss="bce"`, `BaseTrainer` at batch 128, Adam 1e-3, no evaluation set;
  an epoch is one `train_step`. pythae needs its own interpreter (`--pythae-python`: a venv
  with `pip install --no-deps pythae==0.1.2` and its dependencies, seeing aelab's torch); without
  one that side is left out and says so.

Prints one JSON line per side and round (seconds of every epoch; the first one is warm-up and
is not in the median) and then a table: each side's median epoch over the rounds, and how many
times aelab's epoch it is, the median of the rounds' ratios (each round's sides ran minutes
apart, where a shared machine's pace can move by half between one sitting's start and end).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from parity_pytorch_examples import ReferenceVAE  # pytorch/examples vae/main.py's model
from torch import nn

HERE = Path(__file__).resolve()


class TorchvisionMNIST(torch.utils.data.Dataset):
    """What torchvision.datasets.MNIST(transform=ToTensor()) does per digit: a PIL image of
    the uint8 array, then ToTensor's copy to a float tensor / 255."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        img = Image.fromarray(self.images[i].numpy(), mode="L")
        x = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(28, 28, 1).permute(2, 0, 1).contiguous()
        return x.float().div(255), int(self.labels[i])


def _mnist_train() -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from aelab.data import sources
    arrays = sources.load_mnist("")
    return arrays.train_images, arrays.train_labels


def pytorch_examples(epochs: int) -> list[float]:
    torch.manual_seed(1)
    loader = torch.utils.data.DataLoader(TorchvisionMNIST(*_mnist_train()), batch_size=128, shuffle=True)
    model = ReferenceVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        train_loss = 0
        for data, _ in loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            bce = F.binary_cross_entropy(recon, data.view(-1, 784), reduction="sum")
            loss = bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def aelab(epochs: int) -> list[float]:
    from aelab import config, registry
    from aelab.config import CONFIG_DIR
    from aelab.training import train
    from aelab.runs.rundir import RunDir
    cfg = config.load(CONFIG_DIR / "vae_mnist.toml", [f"train.epochs={epochs}"])
    data = registry.build_data(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(tmp + "/run", cfg)
        train.fit(cfg, run, data, train.Options(progress=False))
        return [r["seconds"] for r in run.metrics()]


def pythae(epochs: int) -> list[float]:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            h = F.relu(self.fc1(x.reshape(-1, 784)))
            return ModelOutput(embedding=self.fc21(h), log_covariance=self.fc22(h))

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.fc4(F.relu(self.fc3(z)))).reshape(-1, 1, 28, 28))

    images, labels = _mnist_train()
    x = torch.from_numpy(images).unsqueeze(1).float().div(255)
    model_cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce")
    model = VAE(model_cfg, encoder=Encoder(), decoder=Decoder())
    with tempfile.TemporaryDirectory() as tmp:
        train_cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=epochs, learning_rate=1e-3,
                                      per_device_train_batch_size=128, optimizer_cls="Adam", no_cuda=True)
        trainer = BaseTrainer(model, BaseDataset(x, torch.from_numpy(labels.astype(np.int64))),
                              training_config=train_cfg)
        times, step = [], trainer.train_step

        def timed_step(epoch):
            start = time.perf_counter()
            loss = step(epoch)
            times.append(time.perf_counter() - start)
            return loss
        trainer.train_step = timed_step
        trainer.train()
    return times


SIDES = {"aelab": aelab, "pytorch/examples": pytorch_examples, "pythae": pythae}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--pythae-python", help="an interpreter with pythae 0.1.2 installed")
    p.add_argument("--rounds", type=int, default=1, help="run the sides in turn this many times (the machine's "
                   "pace drifts: a ratio is taken within each round, and their median printed)")
    p.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)  # one side, in this process
    args = p.parse_args()
    if args.side:
        times = SIDES[args.side](args.epochs)
        print(json.dumps({"side": args.side, "epochs_s": [round(t, 3) for t in times],
                          "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
        return 0
    runs: dict[str, list[list[float]]] = {}  # side -> each round's epochs
    for round_ in range(args.rounds):
        for side in SIDES:
            python = args.pythae_python if side == "pythae" else sys.executable
            if python is None:
                if round_ == 0:
                    print(f"{side}: left out (no --pythae-python)", file=sys.stderr)
                continue
            proc = subprocess.run([python, str(HERE), "--side", side, "--epochs", str(args.epochs)],
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"{side}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps({"round": round_ + 1, **row}), flush=True)
            runs.setdefault(side, []).append(row["epochs_s"])
    # each run's first epoch is warm-up; a round's ratio holds sides that ran minutes apart, not hours
    medians = {side: [statistics.median(e[1:] or e) for e in epochs] for side, epochs in runs.items()}
    print(f"\n{'side':<18} {'epoch s (median)':>17} {'aelab faster by':>16}   by round")
    for side, per_round in medians.items():
        ratios = [s / a for s, a in zip(per_round, medians.get("aelab", per_round))]
        print(f"{side:<18} {statistics.median(per_round):17.2f} {statistics.median(ratios):15.2f}x   "
              + ", ".join(f"{r:.2f}x" for r in ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
