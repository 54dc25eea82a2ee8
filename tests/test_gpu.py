"""The GPU path: training, evaluation and figures on CUDA. Skipped where torch sees no GPU
(the CPU suite is unchanged); two NCCL processes need two GPUs."""

import json
import os
import subprocess
import sys

import pytest
import torch

from aelab import hardware
from aelab.evaluation.evaluate import evaluate_run
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_auto_trains_on_the_gpu_and_evaluates_and_draws_there(tmp_path, small_data):
    from aelab.reporting.figures import draw_run

    cfg = tiny("cvae", train={"epochs": 2})
    assert hardware.device(cfg.train.device).type == "cuda"
    run = RunDir.create(tmp_path / "run", cfg)
    state = train.fit(cfg, run, small_data)
    assert next(state.model.parameters()).is_cuda
    (record,) = run.training()
    assert record["device"].startswith("cuda") and record["precision"] == hardware.precision(cfg.train.precision, hardware.device(cfg.train.device))
    metrics = evaluate_run(run, small_data, k=50)
    assert metrics["nll_is"] > 0 and metrics["cond_acc"] >= 0
    model = state.model.eval()
    drawn = draw_run(model, small_data.to(hardware.device(cfg.train.device)), run.metrics_path, tmp_path / "figures", "cvae")
    assert {d.key for d in drawn} >= {"samples", "label_grid", "reconstructions"}


def test_gpu_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, small_data):
    cfg = tiny("vae", train={"epochs": 3}, model={"corruption": {"name": "gaussian", "sigma": 0.1}})
    whole, part = RunDir.create(tmp_path / "whole", cfg), RunDir.create(tmp_path / "part", cfg)
    train.fit(cfg, whole, small_data)
    train.fit(cfg, part, small_data, until_epoch=1)
    train.fit(cfg, part, small_data, resume=True)
    a, b = (checkpoint.load(r.last_path)["model"] for r in (whole, part))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bfloat16_on_a_gpu_that_has_it(tmp_path, small_data):
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip("this GPU only emulates bfloat16")
    cfg = tiny("ae", model={"network": {"name": "cnn", "hidden": [8, 16]}}, train={"epochs": 2})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data)
    assert run.training()[0]["precision"] == "bfloat16"
    losses = [r["val_loss"] for r in run.metrics()]
    assert losses[1] < losses[0]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_nccl_processes(tmp_path):
    out = tmp_path / "two"
    sets = ["data.val_size=256", "data.train_size=4096", "model.network.hidden=[64]", "train.epochs=2"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "aelab", "train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(out),
                           *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (nccl)" in proc.stderr
    assert json.loads((out / "done.json").read_text())["epochs"] == 2


def test_cuda_graphs_replay_the_steps_and_train_what_eager_steps_train(tmp_path, small_data, monkeypatch):
    from aelab.training import graphed

    made = []

    class Recorded(graphed.Steps):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(graphed, "Steps", Recorded)
    sets = {"model": {"corruption": {"name": "gaussian", "sigma": 0.1}}}
    cfg = tiny("vae", train={"epochs": 3, "batch_size": 60}, **sets)
    off = tiny("vae", train={"epochs": 3, "batch_size": 60, "cuda_graphs": False}, **sets)
    runs = {name: RunDir.create(tmp_path / name, c) for name, c in (("graphs", cfg), ("eager", off))}
    for name, c in (("graphs", cfg), ("eager", off)):
        train.fit(c, runs[name], small_data)
    # 9 steps an epoch (8 of 60 images, one of 32): 3 warm-up steps, then replays of every full batch
    assert made[0].counts == {"eager": 6, "captured": 1, "replayed": 21}
    assert runs["graphs"].training()[0]["cuda_graphs"] and not runs["eager"].training()[0]["cuda_graphs"]
    a, b = (checkpoint.load(r.last_path)["model"] for r in runs.values())
    assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-5) for k in a)
    # resumed, a graphed run recaptures and ends on the uninterrupted run's bits
    part = RunDir.create(tmp_path / "part", cfg)
    train.fit(cfg, part, small_data, until_epoch=1)
    train.fit(cfg, part, small_data, resume=True)
    c = checkpoint.load(part.last_path)["model"]
    assert all(torch.equal(a[k], c[k]) for k in a)
