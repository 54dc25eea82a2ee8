"""The VQ-VAE's codebook against its definitions: the nearest vector by brute force (padding
included), the straight-through gradient, the running-mean codebook, restarts, the prior over
codes and the usage figures."""

import json
import math

import pytest
import torch

from aelab import registry
from aelab.data.splits import Batch
from aelab.parts import quantized
from aelab.parts.quantized import DECAY, VectorQuantizer
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny


def test_the_nearest_vector_over_each_positions_real_coordinates():
    torch.manual_seed(0)
    q = VectorQuantizer(latent_dim=10, codebook_size=6, code_dim=4, commitment=0.25)  # 3 positions, 2 numbers padded
    q.codebook.normal_()
    h = torch.randn(5, 10)
    vectors = q.split(h)  # (5, 3, 4)
    assert torch.equal(q.join(vectors), h)
    expected = ((vectors[:, :, None, :] - q.codebook) ** 2 * q.real[:, None, :]).sum(-1).argmin(-1)
    assert torch.equal(q.nearest(vectors), expected)
    assert q.real.sum() == 10 and q.real[:, -1].tolist() == [1.0, 0.0, 0.0]  # channel-major: the last channel's tail


def test_the_gradient_passes_the_choice_straight_through():
    q = VectorQuantizer(latent_dim=8, codebook_size=4, code_dim=2, commitment=0.0).eval()
    q.codebook.copy_(torch.randn(4, 2))
    h = torch.randn(3, 8, requires_grad=True)
    post = q.posterior(h)
    assert torch.allclose(post.mean, q.join(q.codebook[q.nearest(q.split(h))]), atol=1e-6)  # the chosen vectors ...
    weights = torch.randn(3, 8)
    (post.mean * weights).sum().backward()
    assert torch.equal(h.grad, weights)  # ... with the gradient of the code itself


def test_the_codebook_is_the_running_mean_of_the_codes_that_choose_it():
    torch.manual_seed(0)
    q = VectorQuantizer(latent_dim=6, codebook_size=3, code_dim=2, commitment=0.25).train()
    h = torch.randn(50, 6)
    q.posterior(h)  # the first step places the codebook on codes of the batch, then counts
    for _ in range(2000):
        index = q.nearest(q.split(h))
        q.posterior(h)
    vectors = q.split(h).reshape(-1, 2)
    index = index.reshape(-1)
    for k in index.unique():
        assert torch.allclose(q.codebook[k], vectors[index == k].mean(0), atol=1e-4)
    assert DECAY ** 2000 < 1e-8  # the first steps' weight is gone


def test_a_vector_no_code_chooses_is_restarted_on_a_code():
    torch.manual_seed(0)
    q = VectorQuantizer(latent_dim=4, codebook_size=3, code_dim=2, commitment=0.25).train()
    h = torch.randn(20, 4)
    q.posterior(h)
    q.codebook[2] = 1e6  # far from every code: never chosen ...
    q.sums[2] = q.codebook[2] * q.counts[2]
    for _ in range(800):
        q.posterior(h)
    assert q.codebook.abs().max() < 100  # ... so restarted where the codes are
    assert (torch.bincount(q.nearest(q.split(h)).flatten(), minlength=3) > 0).all()


def test_samples_draw_each_position_from_its_running_shares_and_usage_is_counted():
    torch.manual_seed(0)
    q = VectorQuantizer(latent_dim=4, codebook_size=5, code_dim=2, commitment=0.25)
    q.codebook.copy_(torch.arange(10.0).view(5, 2))
    q.position_shares.copy_(torch.tensor([[0.7, 0.3, 0, 0, 0], [0, 0, 0.2, 0.2, 0.6]]))
    codes = q.around(None)(None).draw(torch.randn(100_000, 4, generator=torch.Generator().manual_seed(1)))
    index = q.nearest(q.split(codes))  # (B, 2)
    for n in range(2):
        got = torch.bincount(index[:, n], minlength=5).double() / len(index)
        assert torch.allclose(got, q.position_shares[n].double(), atol=0.005)
    one = q.usage(q.join(q.codebook[torch.zeros(10, 2, dtype=torch.long)]), image_dims=8)
    assert (one["codebook_usage"], one["codebook_perplexity"]) == (0.2, 1.0)
    even = q.usage(q.join(q.codebook[torch.arange(5).repeat(2, 1).T]), image_dims=8)
    assert even["codebook_usage"] == 1.0 and math.isclose(even["codebook_perplexity"], 5.0)
    # the rate under the fitted prior: codes drawn from it cost its entropy, in bits an image ...
    drawn = q.usage(codes, image_dims=8)
    entropy = -sum(p * math.log2(p) for p in [0.7, 0.3, 0.2, 0.2, 0.6])
    assert math.isclose(drawn["code_bits"], entropy, rel_tol=0.01)
    assert math.isclose(drawn["code_bits_per_dim"], drawn["code_bits"] / 8)
    # ... a choice the prior never saw is counted at its floor: finite, and dear
    floor = quantized.FLOOR / 5
    assert math.isclose(one["code_bits"], -math.log2((1 - quantized.FLOOR) * 0.7 + floor) - math.log2(floor), rel_tol=1e-6)  # shares in float32


def test_a_vq_model_trains_without_a_kl_and_samples_reproducibly():
    cfg = tiny("ae", model={"latent_dim": 16, "latent": {"name": "vq", "codebook_size": 8, "code_dim": 4}})
    torch.manual_seed(0)
    model = registry.build_model(cfg, (1, 28, 28), 10)
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    out = model.loss(Batch(x, torch.zeros(16, dtype=torch.long)))
    assert set(out) == {"loss", "recon", "commitment", "selection", "mse"}
    assert torch.allclose(out["loss"], out["recon"] + out["commitment"])
    assert torch.equal(out["selection"], out["recon"])  # the best checkpoint is chosen without the commitment term
    model.eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.sample(6, generator=g()), model.sample(6, generator=g()))


def test_the_best_vq_checkpoint_is_chosen_on_the_loss_without_its_commitment(tmp_path, small_data):
    cfg = tiny("ae", model={"latent_dim": 16, "latent": {"name": "vq", "codebook_size": 8, "code_dim": 4}},
               train={"epochs": 4})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data)
    metrics = run.metrics()
    best = min(metrics, key=lambda r: r["val_selection"])
    assert checkpoint.load(run.best_path)["epoch"] == best["epoch"]
    assert json.loads(run.done_path.read_text())["best_val_loss"] == pytest.approx(best["val_selection"])
