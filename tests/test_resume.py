"""Never lose work: kills at any moment, checkpoints inside epochs, Ctrl-C and SIGTERM, one
writer per run. Real `aelab train` processes where the operating system is part of the story."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from aelab import files
from aelab.cli import main
from aelab.training import train
from aelab.runs import checkpoint, runlock
from aelab.runs.rundir import RunDir
from conftest import tiny, write_photos

AELAB = [sys.executable, "-m", "aelab"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# An MLP VAE on 2,048 real digits, dynamically binarised and corrupted (noise drawn in three
# places), 64 steps an epoch, a checkpoint at every sync (8 steps) inside the epochs.
MLP = ["data.binarize=dynamic", "data.val_size=256", "data.train_size=2048", "model.network.hidden=[64]",
       "model.latent_dim=4", "model.corruption.name=gaussian", "model.corruption.sigma=0.2", "train.batch_size=32",
       "train.log_every=8", "train.checkpoint_every_min=1e-9", "train.epochs=3", "train.threads=1"]
CNN_TOML = """
[data]
name = "folder"
root = "{root}"
test_fraction = 0.25
image_size = 16
val_size = 8
[model]
latent_dim = 8
[model.network]
name = "cnn"
hidden = [8, 16]
[model.latent]
name = "point"
[model.likelihood]
name = "gaussian"
[train]
epochs = 3
batch_size = 4
log_every = 2
checkpoint_every_min = 1e-9
threads = 1
"""


def _sets(sets):
    return [a for s in sets for a in ("--set", s)]


def _weights(run):
    return checkpoint.load(run / "last.pt")["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _untimed(run):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in RunDir(run).metrics()]


def _training(proc, run) -> None:
    """Wait until `proc` holds the run's lock and has written the run's config: its config and
    data are loaded, training starts (the lock is taken before anything is written)."""
    deadline = time.time() + 60
    while (runlock.holder(run) != str(proc.pid) or not (run / "meta.json").is_file()) and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.005)


def _checkpointed(proc, run) -> None:
    """Wait until `proc` has written a checkpoint of its own."""
    before = (run / "last.pt").stat().st_mtime_ns if (run / "last.pt").exists() else 0
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and (
            not (run / "last.pt").exists() or (run / "last.pt").stat().st_mtime_ns == before):
        time.sleep(0.002)


def _stopped_until_done(first: list[str], run, signals: list[int], rng: random.Random, longest: float,
                        early: bool = True) -> list[str]:
    """Start `first`, stop it with the first of `signals`, then `aelab train --resume run`
    stopped by the next, and so on; a last resume is left to finish. The first signal comes as
    soon as the run directory exists (before any checkpoint) where `early`, the others at a random moment
    once the process has written a checkpoint of its own. SIGINT and SIGTERM must end in
    exit code 130 and 143 with one line saying how to resume. Returns where each stop landed."""
    landed = []
    for i, signum in enumerate(signals):
        proc = subprocess.Popen(first if i == 0 else AELAB + ["train", "--resume", str(run), "--quiet", "--no-eval"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        if i == 0 and early:
            _training(proc, run)  # the run directory is there, no checkpoint yet
        else:
            _checkpointed(proc, run)  # it is training: then a random moment
            time.sleep(rng.uniform(0, longest))
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
        if signum != signal.SIGKILL and proc.returncode != 0:  # 0: it finished before the signal came
            assert proc.returncode == 128 + signum, err
            last = err.strip().splitlines()[-1]
            assert last.startswith("aelab: interrupted at ") and last.endswith(f"; resume with: aelab train --resume {run}")
            assert not (run / "done.json").exists()
        if (run / "last.pt").is_file():
            saved = checkpoint.load(run / "last.pt")
            step = (saved.get("in_epoch") or {}).get("step", 0)
            landed.append(f"{signal.Signals(signum).name}: epoch {saved['epoch']}" + (f" step {step}" if step else ""))
        else:
            landed.append(f"{signal.Signals(signum).name}: before the first checkpoint")
    assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 0  # the last resume, in this process
    return landed


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """40 small photos of two kinds in two class folders (odd sizes: resized and cropped)."""
    return write_photos(tmp_path_factory.mktemp("photos"), 20, (18, 22))


def _mlp(tmp_path, epochs=3):
    sets = _sets(MLP + [f"train.epochs={epochs}"])
    whole = tmp_path / "whole"
    assert main(["train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(whole), *sets]) == 0
    return whole, AELAB + ["train", "configs/vae_mnist.toml", "--quiet", "--no-eval", *sets]


def _cnn(tmp_path, photos, epochs=3):
    cfg = tmp_path / "cnn.toml"
    cfg.write_text(CNN_TOML.format(root=photos).replace("epochs = 3", f"epochs = {epochs}"))
    whole = tmp_path / "whole"
    assert main(["train", str(cfg), "--quiet", "--no-eval", "--out", str(whole)]) == 0
    return whole, AELAB + ["train", str(cfg), "--quiet", "--no-eval"]


KILL, INT, TERM = signal.SIGKILL, signal.SIGINT, signal.SIGTERM


def _stop_test(tmp_path, make, signals, seed, early=True, longest=0.15, epochs=3):
    whole, first = make(tmp_path)
    run = tmp_path / "stopped"
    landed = _stopped_until_done(first + ["--out", str(run)], run, signals, random.Random(seed), longest, early)
    print(f"stops landed at: {landed}")
    assert _same(_weights(whole), _weights(run)), landed
    assert _untimed(whole) == _untimed(run), landed  # the epochs' losses too, mid-epoch resumes included
    assert json.loads((run / "done.json").read_text())["epochs"] == epochs
    return landed


def test_an_mlp_killed_and_interrupted_at_random_moments_resumes_to_the_bits_of_an_uninterrupted_run(tmp_path):
    landed = _stop_test(tmp_path, _mlp, [KILL, INT], seed=1)
    assert landed[0] == "SIGKILL: before the first checkpoint"


def test_a_cnn_on_an_image_folder_killed_at_a_random_moment_resumes_to_the_same_bits(tmp_path, photos):
    landed = _stop_test(tmp_path, lambda p: _cnn(p, photos), [KILL], seed=2, early=False, longest=0.02)
    assert landed[0] != "SIGKILL: epoch 3", "the run finished before it could be killed"


@pytest.mark.slow
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_fifty_stops(tmp_path, photos, net):
    """25 stops of each model, 15 of them SIGKILL, in runs long enough that they land before
    the end: pytest -m slow."""
    epochs = 12 if net == "mlp" else 24  # a resume of the CNN gets further before its stop
    make = (lambda p: _mlp(p, epochs)) if net == "mlp" else (lambda p: _cnn(p, photos, epochs))
    landed = _stop_test(tmp_path, make, [KILL, INT, KILL, TERM, KILL] * 5, seed=3,
                        longest=0.15 if net == "mlp" else 0.02, epochs=epochs)
    assert sum("step" in w for w in landed) >= 10  # inside an epoch
    assert sum(w.endswith(f"epoch {epochs}") for w in landed) <= 2  # not stops of a finished run


def test_a_mid_epoch_checkpoint_resumes_to_the_bits_of_an_uninterrupted_run(tmp_path, small_data, monkeypatch):
    """In process: the run stops right after its 5th checkpoint (inside the second epoch), and
    again while writing its 9th (the file being written is lost, last.pt stays whole)."""
    cfg = tiny("vae", train={"epochs": 3, "log_every": 2, "checkpoint_every_min": 1e-9, "batch_size": 100},
               model={"corruption": {"name": "gaussian", "sigma": 0.1}})
    whole = RunDir.create(tmp_path / "whole", cfg)
    train.fit(cfg, whole, small_data)
    part = RunDir.create(tmp_path / "part", cfg)
    saves, real_save, real_replace = [], checkpoint.save, os.replace

    class Killed(BaseException):
        pass

    def save(path, payload):
        real_save(path, payload)
        saves.append(payload.get("in_epoch"))
        if len(saves) == 5:
            raise Killed

    monkeypatch.setattr(checkpoint, "save", save)
    with pytest.raises(Killed):
        train.fit(cfg, part, small_data)
    assert saves[-1] is not None and saves[-1]["step"] > 0  # stopped inside an epoch
    monkeypatch.setattr(checkpoint, "save", real_save)
    with part.metrics_path.open("a") as f:
        f.write('{"epoch": 2, "train_lo')  # a line cut short by the kill: dropped on resume

    def replace(src, dst):  # killed between writing the temporary file and renaming it
        if str(dst).endswith("last.pt") and len(saves) >= 8:
            raise Killed
        saves.append(None)
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    with pytest.raises(Killed):
        train.fit(cfg, part, small_data, resume=True)
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert not [p for p in part.path.iterdir() if p.name.startswith(".last.pt")]  # no temporary file left
    checkpoint.load(part.last_path)  # whole
    train.fit(cfg, part, small_data, resume=True)
    assert _same(checkpoint.load(whole.last_path)["model"], checkpoint.load(part.last_path)["model"])
    assert _untimed(whole.path) == _untimed(part.path)


def test_sigterm_and_a_second_signal_in_the_command(tmp_path, capsys, monkeypatch):
    """`aelab train` (in this process) sent SIGTERM once it has a checkpoint: exit 143, one line;
    resumed and sent two signals in a row: the second stops it at once (a KeyboardInterrupt
    through the checkpoint writer: exit 130) and last.pt is still whole. Then it resumes to the
    bits of an uninterrupted run."""
    import threading

    whole, _ = _mlp(tmp_path)
    run = tmp_path / "signalled"
    real_save, calls = checkpoint.save, []

    def save(path, payload, signals=()):
        calls.append(path)
        if len(calls) == 3:  # inside an epoch: a signal, as if from another process
            os.kill(os.getpid(), signal.SIGTERM)
        if len(calls) == 6:  # two in a row, the second while writing
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        real_save(path, payload)

    monkeypatch.setattr(checkpoint, "save", save)
    assert threading.current_thread() is threading.main_thread()
    args = ["train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(run), *_sets(MLP)]
    assert main(args) == 143
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aelab: interrupted at epoch ") and last.endswith(f"resume with: aelab train --resume {run}")
    assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not [p for p in run.iterdir() if p.name.startswith(".last.pt")]
    checkpoint.load(run / "last.pt")
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 0
    assert _same(_weights(whole), _weights(run))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back


def test_a_second_process_on_a_run_is_refused_until_the_first_dies(tmp_path, small_data, capsys):
    cfg = tiny("ae", train={"epochs": 1})
    run = RunDir.create(tmp_path / "run", cfg)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from aelab.runs import runlock\n"
                               "with runlock.locked(sys.argv[1]):\n print('held', flush=True); time.sleep(120)",
                               str(run.path)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.path.iterdir())
    assert main(["train", "--resume", str(run.path), "--quiet", "--no-eval"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"aelab: error: {run.path}: being trained by another process (pid {holder.pid}); wait for it, "
                   "or stop it (a lock left by a dead process is taken over)")
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.path.iterdir()) == before  # nothing touched
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert main(["train", "--resume", str(run.path), "--quiet", "--no-eval"]) == 0  # the dead holder's lock is taken
    assert run.is_done() and runlock.holder(run.path) == str(os.getpid())


def test_a_study_interrupted_by_ctrl_c_goes_on_with_the_same_command(tmp_path, capsys, monkeypatch):
    """`aelab study` (in this process) sent SIGINT inside its first run's training: exit 130,
    one line naming the study command; that command again finishes the study, and the run
    interrupted has the bits of the same run trained without a stop."""
    import pickle

    from aelab.training.interrupt import Interrupted

    (tmp_path / "base.toml").write_text('[data]\nval_size = 256\ntrain_size = 1024\n[model]\nlatent_dim = 2\n'
                                        '[model.network]\nhidden = [32]\n[train]\nepochs = 2\nbatch_size = 64\n'
                                        'log_every = 4\ncheckpoint_every_min = 1e-9\nthreads = 1\n')
    (tmp_path / "s.toml").write_text('config = "base.toml"\nnll_k = 4\n[variants.vae]\n')
    out = tmp_path / "study"
    real_save, calls = checkpoint.save, []

    def save(path, payload):
        calls.append(path)
        if len(calls) == 3:  # inside the first epoch of the first run
            os.kill(os.getpid(), signal.SIGINT)
        real_save(path, payload)

    monkeypatch.setattr(checkpoint, "save", save)
    command = ["study", str(tmp_path / "s.toml"), "--out", str(out)]
    assert main(command) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aelab: interrupted at epoch 1 step ")
    assert last.endswith(f"resume the study with: aelab study {tmp_path / 's.toml'} --out {out}")
    assert not (out / "runs" / "vae" / "done.json").exists() and not (out / "report.html").exists()
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert main(command) == 0
    assert (out / "report.html").is_file() and "interrupted, resuming" in capsys.readouterr().err
    whole = tmp_path / "whole"
    assert main(["train", str(tmp_path / "base.toml"), "--quiet", "--no-eval", "--out", str(whole)]) == 0
    assert _same(_weights(whole), _weights(out / "runs" / "vae"))
    e = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM, "interrupted at epoch 2")))  # from a --jobs worker
    assert (e.exit_code, str(e)) == (143, "interrupted at epoch 2")
