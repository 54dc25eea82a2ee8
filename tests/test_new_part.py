"""A new built-in prior is one source file and one line in the catalog. Written into a temporary
module, with its line added to PARTS, it is checked, trained, reported with its theory, and
listed in the docs' generated table of parts; nothing else in aelab learns its name."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import torch

from aelab import config
from aelab.parts.catalog import PARTS, listing
from aelab.reporting import theory
from aelab.studies import pipeline
from aelab.training import owner, train
from conftest import tiny

ROOT = Path(__file__).resolve().parents[1]

# the one source file: a prior p(z) = N(0, s^2 I), wider (s > 1) or narrower than the standard one
WIDE = '''
"""p(z) = N(0, s^2 I): the standard prior, scaled."""

import math
from dataclasses import dataclass

import torch

from aelab.language import N_
from aelab.parts.slots import Prior, PriorDensity, PriorSettings
from aelab.settings import bounded

WIDE_THEORY = (N_("A scaled prior"), [N_("p(z) = N(0, s² I): KL(q ‖ p) = ½ Σ_j (σ_j² + μ_j²)/s² − 1 − log σ_j² + log s², "
                                      "in closed form; samples are s ε.")])


class ScaledNormal(PriorDensity):
    closed_kl = True

    def __init__(self, scale):
        self.scale = scale

    def log_prob(self, z):
        return (-0.5 * (z / self.scale).pow(2) - math.log(self.scale) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def kl_from(self, q):
        s2 = self.scale ** 2
        return 0.5 * ((q.logvar.exp() + q.mean.pow(2)) / s2 - 1 - q.logvar + math.log(s2))

    def draw(self, eps, generator=None):
        return self.scale * eps


class ScaledPrior(Prior):
    symbol = "N(0, s² I)"

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, y):
        return ScaledNormal(self.scale)


@dataclass(frozen=True)
class WidePriorSettings(PriorSettings):
    """[model.prior] name = "wide": p(z) = N(0, s² I), the standard prior scaled by `scale`."""

    name = "wide"
    scale: float = bounded(2.0, above=0.0)

    def theory(self, model):
        return [WIDE_THEORY]

    def build(self, num_classes, latent_dim):
        return ScaledPrior(self.scale)
'''


def _module(tmp_path: Path):
    path = tmp_path / "wide_prior.py"
    path.write_text(WIDE)
    spec = importlib.util.spec_from_file_location("aelab_test_wide_prior", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_new_prior_is_one_file_and_one_catalog_line(tmp_path, small_data, monkeypatch):
    module = _module(tmp_path)
    monkeypatch.setitem(PARTS["prior"], "wide", module.WidePriorSettings)  # the one line in the catalog
    cfg = tiny("vae", model={"prior": {"name": "wide", "scale": 3.0}}, train={"epochs": 1})
    assert type(cfg.model.prior) is module.WidePriorSettings and cfg.model.prior.scale == 3.0
    assert "prior" in config.dumps(cfg) and 'name = "wide"' in config.dumps(cfg)

    # its closed-form KL is the Monte-Carlo one, through the model as the objectives call it
    from aelab import registry
    model = registry.build_model(cfg, small_data.image_shape, small_data.num_classes)
    q = model.latent.posterior(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
    p = model.prior(None)
    z = q.mean + q.std * torch.randn(20000, *q.mean.shape, generator=torch.Generator().manual_seed(1))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(q.kl(p), mc, rtol=0.05, atol=0.05)
    assert torch.equal(model.prior_draw(torch.ones(2, 4), None), torch.full((2, 4), 3.0))  # seeded: s * eps

    # trained by the one owner of a run, its loss finite
    run = owner.train_or_resume(cfg, tmp_path / "run", small_data, train.Options(progress=False))
    assert run.is_done() and math.isfinite(run.metrics()[-1]["val_loss"])

    # reported, its theory and settings line included
    html = pipeline.report_runs([run.path], tmp_path / "report", title="wide", deep=False)
    page = html.read_text()
    assert "A scaled prior" in page and "p(z) = N(0, s² I)" in page
    assert theory.sections([cfg])[1][0] == "A scaled prior"
    assert "scale 3" in cfg.model.describe()
    assert json.loads((run.path / "eval.json").read_text())["neg_elbo"] > 0

    # listed in the docs' generated table, as the docs build makes it
    table = listing()
    assert "| `model.prior` | `wide` | `scale` `2` | p(z) = N(0, s² I), the standard prior scaled by `scale` |" in table
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(ROOT / "tools"))
    page = mkdocs_hooks.on_page_markdown((ROOT / "docs" / "configuration.md").read_text(), None, None, None)
    assert "| `model.prior` | `wide` |" in page and "<!-- generated: parts -->" not in page


def test_the_generated_table_lists_every_part_of_the_catalog():
    table = listing()
    for slot, names in PARTS.items():
        for name, cls in names.items():
            assert f"| `model.{slot}` | `{name}` |" in table, (slot, name)


def test_a_slot_base_keeps_no_place_among_its_subclasses_fields():
    """A setting declared on a slot's base (a ClassVar) would take its place in every subclass's
    field order, and reorder the configs it writes: the bases give such defaults as properties."""
    import dataclasses
    import typing

    from aelab.parts import slots

    for base in slots.SETTINGS.values():
        declared = {k for k, v in typing.get_type_hints(base, include_extras=True).items()
                    if typing.get_origin(v) is typing.ClassVar}
        for cls in PARTS[base.slot].values():
            assert not declared & {f.name for f in dataclasses.fields(cls)}, (base.__name__, cls.__name__)
            own = [k for k in cls.__dict__.get("__annotations__", {}) if k in {f.name for f in dataclasses.fields(cls)}]
            assert [f.name for f in dataclasses.fields(cls)][-len(own):] == own if own else True, cls.__name__
