"""`aelab check` on parts as users write them: the two examples and every built-in part pass;
deliberately broken parts (the course's own mistakes among them) fail, naming the check and
the mistake."""

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from aelab import cli
from aelab.checking import run
from aelab.parts.catalog import PARTS

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "examples" / "adapter"


@pytest.fixture(autouse=True)
def _own_model_module(monkeypatch):
    """Each test's copy of the course imports its own `model.py`: the name is freed for it
    (and the examples' module put back after), as in a process of its own."""
    monkeypatch.delitem(sys.modules, "model", raising=False)


def _course(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the course's model.py and adapter.py with one line of model.py written wrong."""
    folder = tmp_path / "course"
    folder.mkdir()
    shutil.copy(COURSE / "adapter.py", folder)
    text = (COURSE / "model.py").read_text()
    assert old in text
    (folder / "model.py").write_text(text.replace(old, new))
    return folder


def _part(tmp_path: Path, source: str, name: str = "mine.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _failures(reference: str, small_data, only: set[str]) -> dict[str, run.Result]:
    results = run.check(run.find(reference), run.base_config(), small_data, first_kind_only=True, only=only)
    assert results
    return {r.check: r for r in results if not r.passed}


REPARAMETERISE = "        return mu + eps * std\n"
COURSE_MISTAKES = [
    # the course report's own line: uniform noise, and the log-variance as the standard deviation
    ("        eps = torch.randn_like(std)\n        return mu + eps * std\n",
     "        return mu + log_var * torch.rand_like(log_var)\n",
     ["uniform noise (torch.rand_like)", "the log-variance used as the standard deviation"]),
    ("        eps = torch.randn_like(std)\n", "        eps = torch.rand_like(std)\n", ["uniform noise (torch.rand_like)"]),
    (REPARAMETERISE, "        return mu + eps * log_var.exp()\n", ["the variance used as the standard deviation"]),
    (REPARAMETERISE, "        return mu + eps * log_var\n", ["the log-variance used as the standard deviation"]),
]


@pytest.mark.parametrize("old, new, named", COURSE_MISTAKES, ids=["course-report", "rand", "variance", "log-variance"])
def test_a_course_sampler_written_wrong_is_named(old, new, named, tmp_path, small_data):
    folder = _course(tmp_path, old, new)
    failed = _failures(f"{folder}/adapter.py:CourseLatent", small_data, {"draws have the posterior's moments"})
    mistake = failed["draws have the posterior's moments"].mistake
    assert all(n in mistake for n in named), mistake


@pytest.mark.parametrize("old, new, check, named", [
    ('reduction="sum")', 'reduction="mean")', "the objective's terms = their estimates",
     "the recon averaged over pixels instead of summed"),
    ("kl = 0.0 if mu is None else -0.5 * torch.sum(", "kl = 0.0 if mu is None else 0.5 * torch.sum(",
     "the objective's terms = their estimates", "the KL with the wrong sign"),
    ("kl = 0.0 if mu is None else -0.5 * torch.sum(", "kl = 0.0 if mu is None else -torch.sum(",
     "the objective's terms = their estimates", "the KL without its 1/2"),
], ids=["mean", "kl-sign", "kl-half"])
def test_a_course_loss_function_written_wrong_is_named(old, new, check, named, tmp_path, small_data):
    folder = _course(tmp_path, old, new)
    failed = _failures(f"{folder}/adapter.py:CourseObjective", small_data, {check})
    assert failed[check].mistake.startswith(named), failed[check]


def test_a_decoder_that_returns_probabilities_is_named(tmp_path, small_data):
    folder = _course(tmp_path, "        return self.out(F.relu(self.hidden(zs)))",
                     "        return torch.sigmoid(self.out(F.relu(self.hidden(zs))))")
    failed = _failures(f"{folder}/adapter.py:CourseNetworks", small_data, {"the decoder gives logits"})
    assert "returns probabilities" in failed["the decoder gives logits"].mistake


LATENT = '''
from dataclasses import dataclass
import torch
from aelab.parts import LatentSettings
from aelab.parts.latents import DiagonalGaussian, GaussianLatent

class Posterior(DiagonalGaussian):
    def kl_per_dim(self, prior=None):
        mu, log_var = self.mean, self.logvar
        return {kl}

class Latent(GaussianLatent):
    def posterior(self, h):
        return Posterior(*h.chunk(2, dim=-1))

@dataclass(frozen=True)
class MyLatent(LatentSettings):
    stochastic = True
    short = "VAE"
    def build(self, latent_dim):
        return Latent()
'''


@pytest.mark.parametrize("kl, named", [
    ("0.5 * (1 + log_var - mu.pow(2) - log_var.exp())", "the KL with the wrong sign"),
    ("-(1 + log_var - mu.pow(2) - log_var.exp())", "the KL without its 1/2"),
], ids=["sign", "half"])
def test_a_kl_written_wrong_is_named(kl, named, tmp_path, small_data):
    path = _part(tmp_path, LATENT.replace("{kl}", kl))
    failed = _failures(f"{path}:MyLatent", small_data, {"closed-form KL = Monte Carlo"})
    assert failed["closed-form KL = Monte Carlo"].mistake.startswith(named)


def test_the_right_kl_passes_the_same_check(tmp_path, small_data):
    path = _part(tmp_path, LATENT.replace("{kl}", "-0.5 * (1 + log_var - mu.pow(2) - log_var.exp())"))
    assert not _failures(f"{path}:MyLatent", small_data, {"closed-form KL = Monte Carlo"})


OBJECTIVE = '''
from dataclasses import dataclass
import torch.nn.functional as F
from aelab.parts import Objective, ObjectiveSettings

class MyELBO(Objective):
    def schedule(self, progress):
        return {}
    def __call__(self, model, batch, progress):
        q = model.encode(batch.x, batch.y)
        logits = model.decode(q.rsample(), batch.y)
        mu, log_var = q.mean, q.logvar
        recon = {recon}
        kl = {kl}
        return {"loss": recon + kl, "recon": recon, "kl": kl, "neg_elbo": recon + kl}

@dataclass(frozen=True)
class MyObjective(ObjectiveSettings):
    def build(self, image_shape):
        return MyELBO()
'''
RIGHT_RECON = "F.binary_cross_entropy_with_logits(logits, batch.x, reduction='sum') / len(batch.x)"
RIGHT_KL = "-0.5 * (1 + log_var - mu.pow(2) - log_var.exp()).sum() / len(batch.x)"


@pytest.mark.parametrize("recon, kl, check, named", [
    ("F.binary_cross_entropy_with_logits(logits, batch.x)", RIGHT_KL,  # torch's default: the mean over pixels too
     "-ELBO >= importance-sampled NLL", "the reconstruction averaged over pixels instead of summed"),
    ("F.binary_cross_entropy_with_logits(logits, batch.x)", RIGHT_KL,
     "the objective's terms = their estimates", "the recon averaged over pixels instead of summed"),
    (RIGHT_RECON, RIGHT_KL.replace("-0.5 *", "-1 *"), "the objective's terms = their estimates", "the KL without its 1/2"),
    (RIGHT_RECON, RIGHT_KL.replace("-0.5 *", "0.5 *"), "the objective's terms = their estimates", "the KL with the wrong sign"),
    (RIGHT_RECON.replace(" / len(batch.x)", ""), RIGHT_KL, "the objective's terms = their estimates",
     "the recon summed over the batch instead of averaged over images"),
], ids=["recon-mean-bound", "recon-mean-terms", "kl-half", "kl-sign", "recon-batch-sum"])
def test_an_objective_written_wrong_is_named(recon, kl, check, named, tmp_path, small_data):
    path = _part(tmp_path, OBJECTIVE.replace("{recon}", recon).replace("{kl}", kl))
    failed = _failures(f"{path}:MyObjective", small_data, {check})
    assert failed[check].mistake.startswith(named), failed[check]


def test_the_right_objective_passes_the_same_checks(tmp_path, small_data):
    path = _part(tmp_path, OBJECTIVE.replace("{recon}", RIGHT_RECON).replace("{kl}", RIGHT_KL))
    assert not _failures(f"{path}:MyObjective", small_data,
                         {"-ELBO >= importance-sampled NLL", "the objective's terms = their estimates"})


NETWORK = '''
import math
from dataclasses import dataclass
from torch import nn
from aelab.parts import NetworkSettings, bounded
from aelab.parts.adapters import FlatDecoder, FlatEncoder

@dataclass(frozen=True)
class MyNetworks(NetworkSettings):
    hidden: int = bounded(32, at_least=1)
    dropout: float = bounded(0.0, at_least=0.0, at_most=0.9)
    def build(self, image_shape, out_dim, latent_dim, cond_dim):
        x = math.prod(image_shape)
        enc = nn.Sequential(nn.Linear(x + cond_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, out_dim))
        dec = nn.Sequential(nn.Linear(latent_dim + cond_dim, self.hidden), nn.ReLU(), nn.Linear(self.hidden, x))
        {extra}
        return FlatEncoder(enc), FlatDecoder(dec, image_shape)
'''


def test_a_parameter_with_no_gradient_and_a_setting_never_used_fail(tmp_path, small_data):
    path = _part(tmp_path, NETWORK.replace("{extra}", "enc[0].unused = nn.Linear(3, 3)  # built, never called"))
    failed = _failures(f"{path}:MyNetworks", small_data, {"a gradient on every parameter", "settings"})
    assert "unused" in failed["a gradient on every parameter"].detail
    assert "a parameter the loss never uses" in failed["a gradient on every parameter"].mistake
    assert "dropout" in failed["setting dropout matters"].detail and "setting hidden matters" not in failed
    assert failed["setting dropout matters"].mistake == "the build never passes the setting on"


def test_the_command_prints_a_table_and_exits_1_on_a_failure(tmp_path, capsys):
    folder = _course(tmp_path, *COURSE_MISTAKES[0][:2])
    assert cli.main(["check", f"{folder}/adapter.py:CourseLatent"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  VAE   draws have the posterior's moments" in out
    assert "likely mistake: uniform noise (torch.rand_like) instead of Gaussian (torch.randn_like) and the " \
           "log-variance used as the standard deviation" in out
    assert out.rstrip().endswith("not applicable") and " 0 failed" not in out


@pytest.mark.parametrize("reference", ["examples/adapter/adapter.py:CourseNetworks", "examples/adapter/adapter.py:CourseLatent",
                                       "examples/adapter/adapter.py:CourseObjective", "examples/mixture_prior.py:MixturePrior"])
def test_the_examples_pass_every_check(reference, small_data):
    results = run.check(run.find(str(ROOT / reference)), run.base_config(), small_data)
    assert all(r.passed for r in results), run.table(reference, results)
    assert {r.kind for r in results} >= {"VAE"}


def test_every_built_in_part_passes_the_command(capsys):
    """The command itself on one built-in part of each slot (the registry loop, tests/test_models.py,
    runs the same checks over every part)."""
    for name in ("prior.conditional", "likelihood.laplace"):
        assert name.partition(".")[2] in PARTS[name.partition(".")[0]]
        assert cli.main(["check", name]) == 0, capsys.readouterr().out
        assert " 0 failed" in capsys.readouterr().out


def test_a_second_folders_model_py_is_refused_in_one_process(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    first = _course(tmp_path / "a", "", "")
    run.find(f"{first}/adapter.py:CourseNetworks")
    (tmp_path / "b").mkdir()
    second = _course(tmp_path / "b", "", "")
    assert cli.main(["check", f"{second}/adapter.py:CourseNetworks"]) == 2
    err = capsys.readouterr().err
    assert f"{second}/adapter.py: imports 'model', which this process already imported from {first}/model.py" in err


@pytest.mark.parametrize("name, said", [
    ("nowhere.py:Part", "nowhere.py: no such file"),
    ("no_such_module_xyz:Part", "no_such_module_xyz: no such module"),
    ("prior.nonesuch", "prior.nonesuch: not a part"),
])
def test_a_name_that_is_not_a_part_is_one_line_and_exit_2(name, said, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", name]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


def test_the_reconstruction_floor_is_a_perfect_decoders(small_data):
    """What no training removes from -log p(x|z): a Gaussian's normaliser, D (log s + 1/2 log 2 pi)
    with s = sqrt(1/2), and for a Bernoulli the grey pixels' own entropy. The loss-falls check
    asks for a tenth of the distance to it (a 32x32 colour Gaussian model's recon is mostly it)."""
    import math

    from aelab.checking import model as checks

    batch = run.fixed_batch(small_data)
    cfg = checks.with_part(run.base_config(), "likelihood", PARTS["likelihood"]["gaussian"]())
    gaussian = checks.build(cfg, small_data.image_shape, 10)
    assert checks.recon_floor(gaussian, batch) == pytest.approx(784 * (math.log(math.sqrt(0.5)) + 0.5 * math.log(2 * math.pi)),
                                                               rel=1e-3)
    bernoulli = checks.build(run.base_config(), small_data.image_shape, 10)
    p = batch.x.clamp(1e-4, 1 - 1e-4)
    entropy = -(batch.x * p.log() + (1 - batch.x) * (1 - p).log()).flatten(1).sum(1).mean()
    assert checks.recon_floor(bernoulli, batch) == pytest.approx(entropy.item(), rel=1e-4)


LOOSE = '''
from dataclasses import dataclass
from torch import nn
from aelab.parts import PartSettings

@dataclass(frozen=True)
class LoosePrior(PartSettings):
    slot = "prior"
    def build(self, num_classes, latent_dim):
        return nn.Identity()
'''


def test_a_part_that_does_not_subclass_its_slots_base_is_refused_in_one_line(tmp_path, capsys):
    path = _part(tmp_path, LOOSE)
    assert cli.main(["check", f"{path}:LoosePrior"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}:LoosePrior: does not subclass aelab.parts.PriorSettings" in err, err
