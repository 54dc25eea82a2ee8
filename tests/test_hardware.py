"""Fitting the user's machine: precision chosen from the hardware, time budgets."""

import json

import pytest
import torch

from aelab import hardware, registry
from aelab.cli import main
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")


def _hardware(monkeypatch, *, avx512_bf16=False, amx=False, cuda_bf16=False):
    """Replace torch's capability queries (not the machine's answers)."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    asked = {}

    def cuda_query(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return cuda_bf16 or including_emulation  # emulated bfloat16 is "supported", slowly

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", cuda_query)
    return asked


@pytest.mark.parametrize("device, flags, auto", [
    (CPU, {}, "float32"),  # AVX2 and older
    (CPU, {"avx512_bf16": True}, "bfloat16"),
    (CPU, {"amx": True}, "bfloat16"),
    (CPU, {"avx512_bf16": True, "amx": True}, "bfloat16"),
    (CUDA, {"cuda_bf16": True}, "bfloat16"),  # Ampere and later
    (CUDA, {}, "float32"),  # Volta, Turing: bfloat16 only emulated
    (CUDA, {"avx512_bf16": True}, "float32"),  # the CPU's answer does not count for a GPU
    (MPS, {"avx512_bf16": True, "cuda_bf16": True}, "float32"),
])
def test_auto_precision_follows_the_hardware(monkeypatch, device, flags, auto):
    asked = _hardware(monkeypatch, **flags)
    cfg = tiny("vae")
    assert cfg.train.precision == "auto"  # the default
    assert hardware.precision(cfg.train.precision, device) == auto
    if device.type == "cuda":
        assert asked == {"including_emulation": False}
    for explicit in ("float32", "bfloat16"):  # an explicit choice is kept ...
        cfg = tiny("vae", train={"precision": explicit})
        assert hardware.precision(cfg.train.precision, device) == explicit
        warning = hardware.precision_warning(cfg.train.precision, device)
        # ... with a warning where bfloat16 would be emulated
        assert (warning is not None) == (explicit == "bfloat16" and auto == "float32")
        if warning:
            assert "slower" in warning and "\n" not in warning


def test_the_resolved_precision_is_trained_in_and_recorded(tmp_path, small_data, monkeypatch, capsys):
    """auto on a CPU that reports AVX-512 BF16 trains in bfloat16; meta.json and the log's
    first line say so; on one that does not, float32."""
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        _hardware(monkeypatch, avx512_bf16=native)
        cfg = tiny("ae", model={"network": {"name": "cnn", "hidden": [8, 16]}}, train={"epochs": 1, "device": "cpu"})
        run = RunDir.create(tmp_path / expected, cfg)
        state, seen, setup = train.setup(cfg, small_data), [], train.setup
        conv = next(m for m in state.model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: seen.append(out.dtype) if m.training else None)
        monkeypatch.setattr(train, "setup", lambda c, d: state)
        train.fit(cfg, run, small_data)
        monkeypatch.setattr(train, "setup", setup)
        assert set(seen) == {getattr(torch, expected)}
        (record,) = run.training()
        assert record["precision"] == expected and record["device"] == "cpu" and record["processes"] == 1
        first = capsys.readouterr().err.splitlines()[0]
        assert first.startswith(f"training on cpu, {expected}, ")


class FakeClock:
    """Time that advances `dt` at every reading: with train.log_every = 1 the clock is read
    once per step (and once at each epoch's start), so every step takes `dt`."""

    def __init__(self, dt: float):
        self.t, self.dt = 0.0, dt

    def __call__(self) -> float:
        self.t += self.dt
        return self.t


BUDGETED = {"epochs": 0, "time_budget_min": 0.01, "log_every": 1, "lr_schedule": "cosine", "lr": 1e-2, "lr_min": 1e-4}


def test_a_budgeted_run_ends_on_budget_at_lr_min(tmp_path, small_data, monkeypatch):
    cfg = tiny("vae", train=BUDGETED)
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, train.Options(clock=FakeClock(1 / 64)))  # 8 steps an epoch: 1/8 s; budget 0.6 s: 39 steps
    done = json.loads(run.done_path.read_text())
    assert done["stopped_by"] == "time budget" and done["step_seconds"] == pytest.approx(39 / 64, abs=0.005)
    assert done["epochs"] == 5 and done["epochs_reached"] == 4.875  # 4 epochs and 7 of 8 steps
    rows = run.metrics()
    assert rows[-1]["steps"] == 7 and rows[-1]["reached"] == 4.875 and all("steps" not in r for r in rows[:-1])
    assert rows[-1]["lr"] == 1e-4  # the schedule followed the budget to its end
    assert [r["lr"] for r in rows] == sorted((r["lr"] for r in rows), reverse=True)
    assert train.finished(cfg, done["epochs"], done["step_seconds"])


def test_a_killed_budgeted_run_resumes_to_the_same_budget(tmp_path, small_data, monkeypatch):
    cfg = tiny("vae", train=BUDGETED)
    whole, part = RunDir.create(tmp_path / "whole", cfg), RunDir.create(tmp_path / "part", cfg)
    train.fit(cfg, whole, small_data, train.Options(clock=FakeClock(1 / 64)))
    clock = FakeClock(1 / 64)
    train.fit(cfg, part, small_data, train.Options(clock=clock), until_epoch=3)  # "killed" after its third checkpoint
    assert checkpoint.load(part.last_path)["step_seconds"] == 24 / 64 and not part.is_done()
    train.fit(cfg, part, small_data, train.Options(clock=clock), resume=True)
    a, b = (json.loads(r.done_path.read_text()) for r in (whole, part))
    assert a["step_seconds"] == pytest.approx(b["step_seconds"]) and a["epochs_reached"] == b["epochs_reached"]
    wa, wb = (checkpoint.load(r.last_path)["model"] for r in (whole, part))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # with this clock, to the bit


def test_a_budget_counts_real_training_time_not_validation(tmp_path, capsys):
    """`aelab train` with a 3-second budget on the real clock: it stops within a window of the budget."""
    out = tmp_path / "run"
    sets = ["data.val_size=256", "data.train_size=2048", "model.network.hidden=[64]", "model.latent_dim=4",
            "train.epochs=0", "train.time_budget_min=0.05", "train.log_every=5", "train.threads=1"]
    args = ["train", "configs/vae_mnist.toml", "--quiet", "--no-eval", "--out", str(out)]
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    err = capsys.readouterr().err
    done = json.loads((out / "done.json").read_text())
    assert done["stopped_by"] == "time budget" and 3.0 <= done["step_seconds"] < 3.5
    assert done["train_seconds"] > done["step_seconds"]  # validation took time that was not counted
    assert "budget" in err and "min)" in err
    assert main(["train", "--resume", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_epochs_zero_needs_a_budget():
    from aelab.errors import AelabError

    with pytest.raises(AelabError, match="train.epochs: 0 .* needs a train.time_budget_min"):
        registry.check(tiny("vae", train={"epochs": 0}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_device_that_is_not_there_is_refused_in_one_line(tmp_path):
    from aelab.errors import AelabError

    assert hardware.device(tiny("vae").train.device) == CPU  # auto, here
    for name, words in (("cuda", "no CUDA device"), ("mps", "no Apple MPS device")):
        if name == "mps" and hardware.mps_available():
            continue
        with pytest.raises(AelabError, match=f"train.device: '{name}' asked for, but torch sees {words}"):
            registry.check(tiny("vae", train={"device": name}))


def test_conv_layout_puts_convolutions_channels_last_and_leaves_the_rest():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(4, 2))
    hardware.conv_layout(conv, torch.device("cpu"))
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last) and not conv[0].weight.is_contiguous()
    assert conv[1].weight.is_contiguous()
    other = torch.nn.Conv2d(3, 8, 3)
    hardware.conv_layout(other, torch.device("mps"))  # MPS: its default layout
    assert other.weight.is_contiguous()
