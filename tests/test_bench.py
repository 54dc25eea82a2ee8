import json

import pytest

from aelab import config, hardware
from aelab.cli import main
from aelab.config import CONFIG_DIR


def test_quick_bench_prints_every_figure_as_one_json_line(capsys):
    assert main(["bench", "--quick", "--epochs", "2", "--ref-epochs", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    r = json.loads(last)
    for key in ("epoch_s_median", "epoch_s_first", "images_per_s", "peak_mem_mb", "test_loss", "epoch_floor_s",
                "epoch_floor_ratio", "gemm_gflops", "reference_epoch_s", "speedup_vs_reference", "nll_s",
                "nll_floor_s", "nll_floor_ratio"):
        assert isinstance(r[key], (int, float)) and r[key] > 0, key
    assert r["device"] == str(hardware.device(config.load(CONFIG_DIR / "vae_mnist.toml").train.device)) and r["precision"] in ("float32", "bfloat16") and r["threads"] >= 1
    # the floor is that of the precision it trains in; the float32 floor beside it
    assert r["floor_precision"] == r["precision"] and r["epoch_floor_float32_s"] > 0
    if r["precision"] == "float32":
        assert r["epoch_floor_s"] == r["epoch_floor_float32_s"]
    assert ("dogs_epoch_s" in r) == (r["device"] != "cpu")  # on a CPU only when asked for (--dogs)
    # 6,400 images: 50 steps of 128; the model's products, 784-400-20 and back.
    assert r["train_images"] == 6400 and r["epoch_gflop"] == round(6400 * 6 * 651_200 / 1e9 - 6400 * 2 * 784 * 400 / 1e9, 1)


@pytest.mark.slow
def test_the_training_epoch_is_within_one_and_a_half_times_its_floor(capsys):
    """The target of the CPU step (`make bench` on a quiet machine): an epoch of the shipped
    MLP VAE at most 1.5 times the matrix products' floor in the precision it trains in, and
    faster than the DataLoader loop most users write. Timings are noisy: not in the default suite."""
    assert main(["bench", "--epochs", "3", "--ref-epochs", "2", "--k", "10"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["speedup_vs_reference"] > 1
    assert r["epoch_floor_ratio"] <= 1.5, (f"epoch {r['epoch_s_median']} s against a {r['floor_precision']} floor of "
                                           f"{r['epoch_floor_s']} s")


def test_the_step_floor_counts_what_the_gemm_floor_counts_for_an_mlp():
    """step_floor (the dogs epoch's floor: every convolution and matrix product a step calls,
    recorded while it runs) agrees with training_floor's count from the layer shapes on the MLP
    VAE: forward, weight gradient, and input gradient except the first layer's."""
    import torch

    from aelab import bench, registry

    cfg = config.load(CONFIG_DIR / "vae_mnist.toml", ["model.network.hidden=[64]", "model.latent_dim=8"])
    model = registry.build_model(cfg, (1, 28, 28), 10).train()
    x = torch.rand(32, 1, 28, 28)
    counted = bench.step_floor(model, x, "float32", repeat=1)
    assert counted["flops"] == bench.training_floor(model, 32, 32, repeat=1)["flops"] > 0
    assert counted["seconds"] > 0
