"""Code-space figures' maths: the fitted Gaussian, and the channel's quality sweep."""

import numpy as np
import pytest
import torch

from aelab import registry
from aelab.evaluation.evaluate import CHANNEL_SIGMAS, channel_quality
from aelab.evaluation.metrics import image_quality
from aelab.reporting import codespace
from conftest import tiny


def test_the_fitted_gaussian_has_the_codes_mean_and_covariance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    codes = torch.from_numpy(rng.standard_normal((5000, 4)) @ a + np.arange(4))
    g = codespace.fitted_gaussian(codes)
    assert torch.allclose(g.mean, codes.mean(0))
    assert np.allclose(g.covariance_matrix.numpy(), np.cov(codes.numpy(), rowvar=False), rtol=1e-4, atol=1e-6)
    few = codespace.fitted_gaussian(torch.randn(10, 64))  # fewer codes than dimensions: singular covariance
    assert few.sample((3,)).shape == (3, 64) and torch.isfinite(few.scale_tril).all()


def test_channel_quality_sweeps_the_evaluation_noise_and_puts_it_back(small_data):
    cfg = tiny("ae", model={"channel": {"name": "awgn", "sigma": 0.12}, "latent_dim": 8})
    model = registry.build_model(cfg, small_data.image_shape, 10).eval()
    batches = lambda: small_data.eval_batches(small_data.val, 256)  # noqa: E731
    torch.manual_seed(0)
    got = channel_quality(model, batches)
    assert got["channel_sigmas"] == sorted({*CHANNEL_SIGMAS, 0.12}) and model.channel.eval_sigma == 0.0
    clean = image_quality(model, batches())
    assert got["channel_psnr_db"][0] == pytest.approx(clean["psnr_db"], rel=1e-9)  # sigma 0: the clean codes
    at = got["channel_sigmas"].index(0.12)
    assert got["psnr_train_sigma_db"] == got["channel_psnr_db"][at] and len(got["channel_ssim"]) == len(got["channel_sigmas"])
    assert got["channel_psnr_db"][-1] != got["channel_psnr_db"][0]  # sigma 0.3 changes what is decoded


def test_photos_are_drawn_at_least_at_their_own_size_and_digits_as_before():
    """Figure cells grow with the image: a 64x64 photo gets at least 64 pixels a side (it
    was shrunk to 62 before), a 28x28 digit keeps the 0.62-inch cell, and wide rows stay
    within plots.WIDE where the 0.62-inch cell allows."""
    from aelab.reporting import plots

    def cell_inches(images):
        fig = plots.image_rows([images, images], ["a", "b"], "t")
        width = fig.get_size_inches()[0]
        return (width - 1.2) / len(images)

    assert cell_inches(torch.rand(9, 3, 64, 64)) * plots.DPI >= 2 * 64 - 1e-6
    assert cell_inches(torch.rand(9, 1, 28, 28)) == pytest.approx(0.62)
    assert cell_inches(torch.rand(16, 3, 64, 64)) * 16 == pytest.approx(plots.WIDE)
    fig = plots.image_grid(torch.rand(16, 3, 64, 64), 8, "t")
    assert fig.get_size_inches()[0] >= 8 * 128 / plots.DPI


def test_traversal_rows_name_a_code_maps_channel_and_position():
    from aelab.reporting import figures

    cfg = tiny("ae", model={"network": {"name": "cnn", "hidden": [8, 16, 32], "latent_channels": 4}, "latent_dim": 256})
    model = registry.build_model(cfg, (3, 64, 64), 1)
    assert model.decoder.code_shape == (4, 8, 8)
    assert figures._dimension(model, 3 * 64 + 5 * 8 + 2) == "c3 y5 x2"
    code = torch.zeros(1, 256)
    code[0, 3 * 64 + 5 * 8 + 2] = 1  # the same index, placed where the decoder reads it
    assert code.view(1, 4, 8, 8)[0, 3, 5, 2] == 1
    assert figures._dimension(registry.build_model(tiny("ae"), (1, 28, 28), 10), 3) == "z3"
