"""Evaluation at the hardware's pace (evaluation/pace.py, hardware.eval_batch): the batch from the image size, the
precision from the hardware, bfloat16 forward passes that change no printed digit, and the
channel curve that encodes each image once."""

import dataclasses

import pytest
import torch

from aelab import config, hardware, registry
from aelab.evaluation import evaluate, pace
from aelab.evaluation.metrics import image_quality
from aelab.evaluation.ssim import ssim_per_image
from aelab.reporting.report import METRICS
from aelab.training import train
from aelab.runs.rundir import RunDir
from conftest import channel_cnn_toml, tiny, write_photos


def test_the_batch_follows_the_image_size():
    assert hardware.eval_batch((1, 28, 28), 1000) == 1000  # digits keep their large batches
    assert hardware.eval_batch((3, 64, 64), 1000) == 64  # photos: about a million values a batch
    assert hardware.eval_batch((3, 256, 256), 1000) == hardware.SMALLEST_BATCH
    assert hardware.eval_batch((3, 64, 64), 20) == 20 and hardware.eval_batch((1, 28, 28), 1) == 1


def test_auto_runs_bfloat16_where_the_hardware_has_it():
    cpu = torch.device("cpu")
    assert hardware.precision("auto", cpu) == ("bfloat16" if hardware.native_bfloat16(cpu) else "float32")
    assert hardware.precision("float32", cpu) == "float32"
    assert isinstance(pace.forward("loss", "bfloat16", cpu), type(pace.forward("nll_is", "float32", cpu)))
    with pace.forward("channel_curve", "bfloat16", cpu):
        assert torch.is_autocast_enabled("cpu")
    for group in ("loss", "nll_is", "samples", "image_quality", "codes_test", "codes_train"):  # bfloat16 moves their digits
        with pace.forward(group, "bfloat16", cpu):
            assert not torch.is_autocast_enabled("cpu")


def _trained(tmp_path, cfg, name):
    data = registry.build_data(cfg)
    run = RunDir.create(tmp_path / name, cfg)
    train.fit(cfg, run, data, train.Options(progress=False))
    return run, data


def _digits(fmt: str) -> float:
    return 0.5 * 10.0 ** -(int(fmt[1:-1]) if fmt.endswith("f") else 0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photos(root, per_class=48, size=(32, 32))
    return root


@pytest.mark.parametrize("kind", ["ae", "vae", "cvae", "dae", "channel"])
def test_bfloat16_forward_passes_change_no_printed_digit(kind, tmp_path, photos, mnist):
    """Every metric measured with pace's bfloat16 groups and in float32, on a tiny trained
    model of each kind, agrees to less than half a unit of the digit the report prints."""
    if kind == "channel":
        cfg = config.loads(channel_cnn_toml(photos, image_size=32, val_size=16, latent_dim=256, epochs=2, batch_size=16), "channel")
    elif kind == "dae":
        cfg = tiny("ae", model={"corruption": {"name": "gaussian", "sigma": 0.4}})
    else:
        cfg = tiny(kind)
    run, data = _trained(tmp_path, cfg, kind)
    model, cfg, _ = evaluate.load_model(run)
    measured = {}
    for precision in ("float32", "bfloat16"):
        with_precision = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, eval_precision=precision))
        # the deep groups (nll_is, codes, probe, samples) run in float32 either way: measured deeply for one kind
        measured[precision] = evaluate.measure(model, data, with_precision, k=8, deep=kind == "vae")
    a, b = measured["float32"], measured["bfloat16"]
    assert a["eval_precision"] == "float32" and b["eval_precision"] == "bfloat16"
    compared = [key for key in METRICS if key in a]
    assert len(compared) >= (8 if kind == "vae" else 4)
    for key in compared:
        assert abs(a[key] - b[key]) < _digits(METRICS[key][2]), (key, a[key], b[key])
    for x, y in zip(a.get("channel_psnr_db", []), b.get("channel_psnr_db", [])):
        assert abs(x - y) < 0.005


def test_the_channel_curve_encodes_once_and_measures_what_encoding_at_every_sigma_did(tmp_path, photos):
    cfg = config.loads(channel_cnn_toml(photos, image_size=32, val_size=16, latent_dim=256, epochs=1, batch_size=16), "channel")
    run, data = _trained(tmp_path, cfg, "channel")
    model, cfg, _ = evaluate.load_model(run)
    batches = lambda: data.eval_batches(data.test, 16)  # noqa: E731
    torch.manual_seed(0)
    once = evaluate.channel_quality(model, batches)
    torch.manual_seed(0)
    every = {}  # the way it was: each sigma encoded the test images afresh
    for sigma in once["channel_sigmas"]:
        with model.channel.noise_at(sigma):
            every[sigma] = image_quality(model, batches())
    assert once["channel_psnr_db"] == [every[s]["psnr_db"] for s in once["channel_sigmas"]]
    assert once["channel_ssim"] == [every[s]["ssim"] for s in once["channel_sigmas"]]
    torch.manual_seed(0)  # as measure() calls it: the codes and the clean quality known already
    known = evaluate.channel_quality(model, batches, codes=[model.encode(b.x, b.y).mean for b in batches()],
                                     clean=image_quality(model, batches()))
    assert known == once
    assert once["channel_psnr_db"][0] > once["channel_psnr_db"][-1]  # noise costs PSNR


@pytest.mark.parametrize("shape", [(64, 1, 28, 28), (8, 3, 64, 64), (5, 3, 13, 17)])
def test_ssim_as_matrix_products_is_torchmetrics_ssim(shape, small_data):
    """The report's SSIM (evaluation/ssim.py) against torchmetrics' Gaussian-window SSIM, on
    real digits and on photo-shaped images, each beside a noisy copy."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    torch.manual_seed(0)
    if shape[1] == 1:
        x = small_data.test.images[: shape[0]].float() / 255
    else:
        x = torch.rand(*shape).cumsum(-1).div(shape[-1])  # smooth-ish, as photos are
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    expected = structural_similarity_index_measure(noisy, x, data_range=1.0, reduction="none")
    got = ssim_per_image(noisy, x)
    assert got.shape == (shape[0],) and torch.allclose(got, expected, atol=2e-6, rtol=0)
    assert torch.allclose(ssim_per_image(x, x), torch.ones(shape[0]))
