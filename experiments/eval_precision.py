"""Every metric of trained runs evaluated in float32 and with bfloat16 forward passes, against
the digits the report prints: the measurement behind evaluation/pace.py's BFLOAT16_GROUPS.

    python experiments/eval_precision.py RUN_DIR [RUN_DIR ...] [--k 100]

Each group of metrics is evaluated with its forward passes in bfloat16 (every group, also
those pace.py keeps in float32, so that the table shows why) and in float32, with the same
seeds. A metric agrees when the two differ by less than half a unit of its last printed digit.
Prints a Markdown table, then the seconds of each group in both precisions.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from aelab import hardware, registry
from aelab.evaluation import evaluate, pace
from aelab.reporting.report import METRICS
from aelab.runs.rundir import RunDir

GROUPS = {"loss": ["recon_nats", "kl", "neg_elbo"], "image_quality": ["mse", "psnr_db", "ssim"],
          "denoising": ["psnr_noisy_db", "psnr_denoised_db"],
          "channel": ["psnr_train_sigma_db", "ssim_train_sigma"], "channel_curve": ["channel_psnr_db", "channel_ssim"],
          "nll_is": ["nll_is"],
          "codes_test": ["active_units"], "codes_train": ["probe_acc"],
          "samples": ["fd_classifier", "cond_acc", "sample_class_entropy"]}
FORMATS = {**{k: v[2] for k, v in METRICS.items()}, "channel_psnr_db": ".2f", "channel_ssim": ".4f"}


def measured(run: RunDir, precision: str, k: int) -> dict:
    model, cfg, _ = evaluate.load_model(run, "best")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_precision=precision))
    data = registry.build_data(cfg).to(hardware.device(cfg.train.device))
    return evaluate.measure(model, data, cfg, k=k)


def half_unit(fmt: str) -> float:
    digits = int(fmt[1:-1]) if fmt.endswith("f") else 0
    return 0.5 * 10.0 ** -digits


def rows(name: str, a: dict, b: dict) -> list[str]:
    out = []
    for group, keys in GROUPS.items():
        for key in keys:
            if key not in a:
                continue
            fmt = FORMATS[key]
            pairs = list(zip(a[key], b[key])) if isinstance(a[key], list) else [(a[key], b[key])]
            worst = max(abs(x - y) for x, y in pairs)
            shown = (lambda v: "/".join(format(x, fmt) for x in v)) if isinstance(a[key], list) else (lambda v: format(v, fmt))
            agrees = "yes" if worst < half_unit(fmt) else "**no**"
            out.append(f"| {name} | {group} | {key} | {shown(a[key])} | {shown(b[key])} | {worst:.2g} | {agrees} |")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--k", type=int, default=100)
    args = p.parse_args()
    if not hardware.native_bfloat16(torch.device("cpu")):
        print("note: this CPU emulates bfloat16: the values compare, the seconds do not", file=sys.stderr)
    pace.BFLOAT16_GROUPS = frozenset(GROUPS)  # every group, to show which ones bfloat16 would change
    lines = ["| run | group | metric | float32 | bfloat16 | abs. difference | within the printed digits |",
             "|---|---|---|---|---|---|---|"]
    seconds = []
    for path in args.runs:
        run = RunDir.open(path)
        a, b = measured(run, "float32", args.k), measured(run, "bfloat16", args.k)
        lines += rows(run.path.name, a, b)
        seconds.append(f"{run.path.name}: float32 {a['seconds']}, bfloat16 {b['seconds']}")
    print("\n".join(lines + [""] + seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
