"""Several processes (torchrun, gloo on the CPU) and studies run by a cluster's scheduler."""

import json
import os
import shlex
import subprocess
import sys

import torch

from aelab import config, registry
from aelab.cli import main
from aelab.studies import study
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir

# An MLP VAE on 4,090 real digits, dynamically binarised and corrupted (noise drawn in three
# places), batch 63: shares of 32 + 31 images, and a last batch of 58 (29 + 29). 65 steps an epoch.
SETS = ["data.binarize=dynamic", "data.val_size=256", "data.train_size=4090", "model.network.hidden=[64]",
        "model.latent_dim=4", "model.corruption.name=gaussian", "model.corruption.sigma=0.2", "train.batch_size=63", "train.log_every=10",
        "train.device=cpu", "train.precision=float32"]  # gloo on CPU processes, also where a GPU or AVX-512 BF16 is there


def _args(sets):
    return [a for s in sets for a in ("--set", s)]


def _torchrun(*args, procs=2):
    """`torchrun --standalone --nproc-per-node 2 -m aelab ...` (torchrun is torch.distributed.run)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}",
                           "-m", "aelab", *args, "--no-eval"], capture_output=True, text=True, env=env, timeout=300)


def _weights(run):
    return checkpoint.load(run / "last.pt")["model"]


def test_two_gloo_processes_train_the_weights_of_one_and_resume(tmp_path):
    """Two processes for one epoch, resumed under torchrun for the second: the weights of one
    process's two uninterrupted epochs (130 steps)."""
    epochs = 2
    cfg = config.load("configs/vae_mnist.toml", SETS + [f"train.epochs={epochs}", "train.threads=1"])
    one = RunDir.create(tmp_path / "one", cfg)
    train.fit(cfg, one, registry.build_data(cfg), train.Options(progress=False))

    two = tmp_path / "two"
    proc = _torchrun("train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(two),
                     *_args(SETS + ["train.epochs=1"]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (gloo)" in proc.stderr and proc.stderr.count(f"{two}: training VAE") == 1  # rank 0 alone speaks
    proc = _torchrun("train", "--resume", str(two), "--quiet", "--no-eval", "--set", f"train.epochs={epochs}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _weights(one.path), _weights(two)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a), f"largest difference {worst}"
    m1, m2 = one.metrics(), RunDir(two).metrics()
    assert [r["epoch"] for r in m2] == [1, 2]
    assert abs(m1[-1]["train_loss"] - m2[-1]["train_loss"]) < 1e-3 * abs(m1[-1]["train_loss"])
    records = RunDir(two).training()
    assert len(records) == 2 and all(r["processes"] == 2 and r["backend"] == "gloo" for r in records)


def test_a_failing_process_brings_the_others_down_with_its_message(tmp_path):
    """Rank 0 refuses an existing --out while rank 1 waits for it in the first collective:
    torchrun stops rank 1, and the run fails with rank 0's one-line error."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "something").write_text("x")
    proc = _torchrun("train", "configs/vae_mnist.toml", "--quiet", "--out", str(out), *_args(SETS + ["train.epochs=1"]))
    assert proc.returncode != 0
    assert f"aelab: rank 0 of 2: error: {out}: already exists" in proc.stderr
    assert (out / "something").read_text() == "x" and sorted(p.name for p in out.iterdir()) == ["something"]


STUDY = """
title = "Cluster"
config = "base.toml"
set = ["data.val_size=500", "data.train_size=1000", "model.network.hidden=[32]", "model.latent_dim=2", "train.batch_size=100"]
[variants.ae]
set = ["model.latent.name=point"]
[variants.vae]
[grid]
"train.lr" = [1e-3, 3e-3]
"""


def test_study_list_names_exactly_the_missing_runs_and_its_commands_make_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.toml").write_text('[model.latent]\nname = "gaussian"\n[train]\nepochs = 2\n')
    (tmp_path / "cluster.toml").write_text(STUDY)
    s = study.load(tmp_path / "cluster.toml")
    names = [r.name for r in s.runs]
    assert names == ["ae-lr=0.001", "ae-lr=0.003", "vae-lr=0.001", "vae-lr=0.003"]

    def listed(*extra, out="out"):
        assert main(["study", "cluster.toml", "--out", out, "--list", *extra]) == 0
        return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]

    assert [c[-2] for c in listed()] == [f"out/runs/{n}" for n in names]  # nothing trained yet
    # one run complete, one interrupted after its first epoch, two never started
    done, cut = s.runs[0], s.runs[2]
    data = registry.build_data(done.config)
    train.fit(done.config, RunDir.create(f"out/runs/{done.name}", done.config), data, train.Options(progress=False))
    train.fit(cut.config, RunDir.create(f"out/runs/{cut.name}", cut.config), data, train.Options(progress=False), until_epoch=1)
    commands = listed()
    assert commands == [
        ["aelab", "train", "base.toml", *_args([*s.runs[1].sets]), "--out", f"out/runs/{names[1]}", "--no-eval"],
        ["aelab", "train", "--resume", f"out/runs/{cut.name}", "--no-eval"],
        ["aelab", "train", "base.toml", *_args([*s.runs[3].sets]), "--out", f"out/runs/{names[3]}", "--no-eval"],
    ]
    for command in commands:  # what each job of a scheduler's array runs
        assert main(command[1:] + ["--quiet"]) == 0
    assert listed() == []
    for r in s.runs:  # the study finds each run complete, with its own config
        run = RunDir.open(f"out/runs/{r.name}")
        assert run.is_done() and config.diff(run.config(), r.config) == []
    # --epochs carries over into the commands, as into the study's own runs
    assert all(c[-5:] == ["--set", "train.epochs=3", "--out", f"other/runs/{n}", "--no-eval"]
               for c, n in zip(listed("--epochs", "3", out="other"), names))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_afresh(tmp_path, small_data, capsys):
    cfg = config.load("configs/vae_mnist.toml", ["data.val_size=256", "data.train_size=512", "model.network.hidden=[32]",
                                                 "model.latent_dim=4", "train.epochs=2"])
    whole = RunDir.create(tmp_path / "whole", cfg)
    train.fit(cfg, whole, registry.build_data(cfg), train.Options(progress=False))
    killed = RunDir.create(tmp_path / "killed", cfg)  # config.toml and meta.json, no checkpoint
    killed.append_metrics({"epoch": 1, "train_loss": 1.0})  # half an epoch's record
    assert main(["train", "--resume", str(killed.path), "--quiet"]) == 0
    assert "no checkpoint yet; training from the start with its stored config and seed" in capsys.readouterr().err
    a, b = _weights(whole.path), _weights(killed.path)
    assert all(torch.equal(a[k], b[k]) for k in a) and [r["epoch"] for r in killed.metrics()] == [1, 2]
    assert json.loads(killed.done_path.read_text())["epochs"] == 2
