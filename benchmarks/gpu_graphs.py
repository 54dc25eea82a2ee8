"""The MLP VAE's epoch on a GPU with and without CUDA graphs, and its K = 5000 `nll_is`.

    python benchmarks/gpu_graphs.py [--epochs 5] [--out /tmp/gpu-graphs]

Trains `configs/vae_mnist.toml` for `--epochs` epochs with `train.cuda_graphs` true, then
false, and prints each epoch's seconds, their median past the first epoch (which holds the
warm-up and the capture), how the steps ran (meta.json), and the wall time of `aelab eval
--k 5000` on the graphed run. The last line is one JSON object with every figure. Issue 28's
targets on an H100-class GPU: the epoch under 0.3 s, the evaluation under 5 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _aelab(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "aelab", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"aelab {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/gpu-graphs"))
    parser.add_argument("--k", type=int, default=5000, help="importance samples of the nll_is timed")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    figures: dict = {}
    for graphs in (True, False):
        run = args.out / ("graphs" if graphs else "eager")
        _aelab("train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(run),
               "--set", f"train.epochs={args.epochs}", "--set", f"train.cuda_graphs={str(graphs).lower()}")
        seconds = [json.loads(line)["seconds"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        meta = json.loads((run / "meta.json").read_text())
        figures[run.name] = {"epoch_seconds": seconds, "median_after_first": statistics.median(seconds[1:] or seconds),
                             "training": meta.get("training")}
        print(f"{run.name}: epochs {seconds} s", file=sys.stderr)
    start = time.perf_counter()
    record = json.loads(_aelab("eval", str(args.out / "graphs"), "--k", str(args.k), "--json").stdout)
    figures[f"eval_k{args.k}_seconds"] = round(time.perf_counter() - start, 2)
    figures["nll_is"] = record.get("nll_is")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
