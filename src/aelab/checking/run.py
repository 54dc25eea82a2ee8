"""`aelab check NAME`: a part put through the registry loop's checks (model.py) and the maths
checks (maths.py), in every kind of model that takes it, on a fixed batch of real images.

NAME is a user's part ('path/to/file.py:Class', 'package.module:Class') or a built-in one
('prior.conditional'). The model around it is the base config's (a small MLP VAE on MNIST,
unless `--config` gives another), made an AE, a VAE or a CVAE where the part asks for one.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

from aelab import config, registry
from aelab.checking import maths
from aelab.checking import model as checks
from aelab.config import RunConfig
from aelab.data.splits import Batch, ImageData
from aelab.errors import AelabError
from aelab import userparts
from aelab.parts.catalog import PARTS
from aelab.settings import PartSettings

# The model a part is checked in, unless --config gives one: small and quick, on real digits.
BASE = {"data": {"name": "mnist", "val_size": 256, "train_size": 512},
        "model": {"latent_dim": 8, "network": {"name": "mlp", "hidden": [64]}}}
BATCH = 64


@dataclass(frozen=True)
class Result:
    kind: str  # the model it was checked in: 'VAE', 'CVAE', ...
    check: str
    passed: bool
    detail: str
    mistake: str = ""
    applies: bool = True  # False: the check has nothing to look at in this part (passed)

    @property
    def mark(self) -> str:
        return "n/a " if not self.applies else "ok  " if self.passed else "FAIL"


def find(name: str, folder: Path | None = None) -> type[PartSettings]:
    """The settings class `name` names: a user's reference, or 'slot.name' of a built-in part."""
    if userparts.is_reference(name):
        return userparts.resolve(userparts.slot_of(name, folder), name, folder)
    slot, _, part = name.partition(".")
    if slot in PARTS and part in PARTS[slot]:
        return PARTS[slot][part]
    built_in = ", ".join(f"{s}.{n}" for s, table in PARTS.items() for n in table)
    raise AelabError(f"{name}: not a part; name a class of your own as 'path/to/file.py:Class' or a built-in "
                     f"one: {built_in}")


def base_config(path: str | Path | None = None) -> RunConfig:
    return config.load(path) if path else config.from_dict(BASE, "aelab check")


def fixed_batch(data: ImageData) -> Batch:
    return next(data.eval_batches(data.train, BATCH))


def check(cls: type[PartSettings], base: RunConfig, data: ImageData, *, first_kind_only: bool = False,
          only: set[str] | None = None) -> list[Result]:
    """Every check of part `cls` (at its defaults) in every kind of model that takes it; each
    setting moved alone is checked in the first. `only`: the checks of these names alone."""
    cfgs = checks.kinds(base, cls.slot, cls())
    if not cfgs:
        raise AelabError(f"{cls.__name__}: no kind of model (AE, VAE, CVAE of the base config) takes it: "
                         "its check() refuses each")
    batch, shape, classes = fixed_batch(data), data.image_shape, data.num_classes
    results = []
    for i, cfg in enumerate(cfgs[:1] if first_kind_only else cfgs):
        kind = cfg.model.short

        def run(name, fn, *args):
            if only is not None and name not in only and not (name.startswith("setting ") and "settings" in only):
                return
            if any(r.kind == kind and r.check == "builds on the meta device" and not r.passed for r in results):
                results.append(Result(kind, name, True, "not checked: the model does not build", applies=False))
                return
            try:
                said = fn(*args)
                results.append(Result(kind, name, True, said, applies=not isinstance(said, checks.NotApplicable)))
            except checks.Failed as e:
                results.append(Result(kind, name, False, e.what, e.mistake))
            except AelabError:
                raise
            except Exception as e:  # the part's own code raised: a failed check, said in one line
                results.append(Result(kind, name, False, f"raised {type(e).__name__}: {' '.join(str(e).split())[:200]}"))

        fresh = lambda: checks.build(cfg, shape, classes)  # noqa: E731
        # the model after a few steps, made once for the two checks that read it (neither trains it)
        warmed = functools.cache(lambda: checks.warmed(fresh(), batch))
        run("builds on the meta device", checks.builds_on_meta, cfg, shape, classes)
        run("shapes and finite losses", lambda: checks.shapes(fresh(), batch))
        run("a gradient on every parameter", lambda: checks.gradients(fresh(), batch))
        run("the loss falls on a fixed batch", lambda: checks.loss_falls(fresh(), batch))
        run("save and load", checks.round_trip, cfg, batch, shape, classes)
        run("draws have the posterior's moments", lambda: maths.draws_match_posterior(fresh()))
        run("closed-form KL = Monte Carlo", lambda: maths.kl_matches_monte_carlo(fresh(), batch.y))
        run("-ELBO >= importance-sampled NLL", lambda: maths.elbo_below_likelihood(warmed(), batch))
        run("the objective's terms = their estimates", lambda: maths.terms_match_estimates(warmed(), batch))
        run("the decoder gives logits", lambda: maths.decoder_gives_logits(fresh(), batch.y))
        if i == 0:
            for f in dataclasses.fields(cls):
                run(f"setting {f.name} matters", checks.setting_matters, base, cls.slot, cls, f.name, batch, shape, classes)
    return results


def table(name: str, results: list[Result]) -> str:
    """The results as a table: one row a check, the likely mistake under a failed one."""
    width = max(len(r.check) for r in results) + 2
    kinds = max(len(r.kind) for r in results) + 2
    lines = [f"aelab check {name}", ""]
    for r in results:
        lines.append(f"{r.mark}  {r.kind:<{kinds}}{r.check:<{width}}{r.detail}")
        if r.mistake:
            lines.append(f"{'':<{6 + kinds + width}}likely mistake: {r.mistake}")
    failed, idle = sum(not r.passed for r in results), sum(not r.applies for r in results)
    lines += ["", f"{len(results) - failed - idle} passed, {failed} failed, {idle} not applicable"]
    return "\n".join(lines)


def main(name: str, config_path: str | None = None) -> tuple[str, bool]:
    """The table of `aelab check NAME` and whether every check passed."""
    cls = find(name)
    base = base_config(config_path)
    results = check(cls, base, registry.build_data(base))
    return table(name, results), all(r.passed for r in results)
