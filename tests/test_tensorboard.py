"""TensorBoard event files of a run, read back with tensorboard's own event reader: the training
parts every log_every steps, validation, schedule and images per epoch, the settings and test
metrics as hparams, and no step twice after a kill and a resume."""

import shutil

import pytest

from aelab.evaluation.evaluate import evaluate_run
from aelab.training import train
from aelab.runs import tensorboard
from aelab.runs.rundir import RunDir
from conftest import tiny

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _events(run: RunDir):
    reader = event_accumulator.EventAccumulator(str(tensorboard.folder(run.path)),
                                                size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    reader.Reload()
    return reader


def _steps(reader, tag: str) -> list[int]:
    return [e.step for e in reader.Scalars(tag)]


def test_a_run_writes_its_parts_schedule_images_and_results(tmp_path, small_data):
    cfg = tiny("cvae", train={"epochs": 2, "tensorboard": True})  # 8 steps an epoch, a sync every 4
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data)
    record = evaluate_run(run, small_data, deep=False)
    reader = _events(run)
    tags = reader.Tags()
    assert _steps(reader, "train/loss") == [4, 8, 12, 16]
    assert {"train/recon", "train/kl", "train/neg_elbo", "train/mse", "schedule/kl_weight"} <= set(tags["scalars"])
    metrics = run.metrics()
    for tag, key in (("val/loss", "val_loss"), ("val/neg_elbo", "val_neg_elbo"), ("schedule/lr", "lr")):
        assert _steps(reader, tag) == [8, 16]
        assert [e.value for e in reader.Scalars(tag)] == pytest.approx([r[key] for r in metrics], rel=1e-6)
    for image in ("reconstructions", "samples"):
        shots = reader.Images(image)
        assert [s.step for s in shots] == [8, 16] and shots[0].width > shots[0].height > 28  # grids, not one digit
    assert reader.Scalars("test/psnr_db")[0].value == pytest.approx(record["psnr_db"], rel=1e-6)
    assert reader.Scalars("test/psnr_db")[0].step == 16  # at the evaluated checkpoint's step
    plugin = reader.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(plugin)
    assert b"model.condition.name" in plugin["_hparams_/session_start_info"]
    evaluate_run(run, small_data, deep=False)  # evaluated again: one set of results, not two
    assert len(list(tensorboard.folder(run.path).glob(f"*{tensorboard.RESULTS_SUFFIX}"))) == 1
    assert len(_events(run).Scalars("test/psnr_db")) == 1


def test_a_killed_and_resumed_run_has_no_step_twice(tmp_path, small_data):
    cfg = tiny("vae", train={"epochs": 3, "tensorboard": True})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, until_epoch=1)
    shutil.copy(run.last_path, tmp_path / "epoch1.pt")
    train.fit(cfg, run, small_data, resume=True, until_epoch=2)  # logs epoch 2 ...
    shutil.copy(tmp_path / "epoch1.pt", run.last_path)  # ... then dies before its checkpoint reached the disk
    train.fit(cfg, run, small_data, resume=True)
    reader = _events(run)
    assert _steps(reader, "train/loss") == [4, 8, 12, 16, 20, 24]
    assert _steps(reader, "val/loss") == [8, 16, 24]
    assert [s.step for s in reader.Images("samples")] == [8, 16, 24]
    values = [e.value for e in reader.Scalars("val/loss")]
    assert values == pytest.approx([r["val_loss"] for r in run.metrics()], rel=1e-6)  # the epochs that count


def test_off_by_default_and_no_files(tmp_path, small_data):
    cfg = tiny("ae")
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data)
    assert not cfg.train.tensorboard and not tensorboard.folder(run.path).exists()
