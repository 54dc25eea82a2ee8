"""`aelab run --model PATH/model.py`: the main job on the student's own classes.

The student's model.py is first checked (course.py) on real digits; then their AE, VAE and
CVAE (and the VAE with a 2-d code, for the code-space figures) are trained, their `forward`
and `Loss` doing the training, and measured and reported by aelab as the main job's are. The
study is written to OUT/course.toml (an ordinary study: `aelab study OUT/course.toml` goes on
with it), the check to OUT/check.json, and the report says which of the student's code ran
and what the check found.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from aelab import config, registry
from aelab.checking import course, run
from aelab.course.code import CLASSES, Sizes
from aelab.course import model as course_model
from aelab.course.model import NO_LOSS, SkeletonSettings
from aelab.errors import AelabError
from aelab.files import write_atomic
from aelab.language import N_, Text
from aelab.studies import pipeline
from aelab.studies.folder import StudyDir

TITLE = N_("Your AE, VAE and CVAE on MNIST")
QUESTION = N_("Your own classes from model.py, trained by your own forward and Loss, measured by aelab in its own "
              "units (nats per image): what does each objective buy?")
BASE = "vae_mnist.toml"  # the main job's sizes: 784-400-20, batch 128, Adam 1e-3, 10 epochs
VARIANTS = {"ae": ["model.skeleton.type=AE"], "vae": ["model.skeleton.type=VAE"],
            "cvae": ["model.skeleton.type=CVAE"], "vae-2d": ["model.skeleton.type=VAE", "model.latent_dim=2"]}


def study_text(model_file: Path, loss: str, models: list[str]) -> str:
    """The study of the student's models (those of `models` that their file has), as TOML."""
    common = ["data.val_size=5000", f"model.skeleton.file={model_file}", f"model.skeleton.loss={loss}"]
    lines = [f"title = {config.toml_value(str(TITLE))}", f"question = {config.toml_value(str(QUESTION))}",
             f"config = {config.toml_value(BASE)}",  # the shipped one (study.find_config)
             f"set = {config.toml_value(common)}", "nll_k = 100", ""]
    for name, sets in VARIANTS.items():
        if sets[0].rpartition("=")[2] in models:
            lines += [f"[variants.{name}]", f"set = {config.toml_value(sets)}", ""]
    return "\n".join(lines)


def said(found: course.Findings, absent: dict[str, str]) -> list[Text]:
    """The report's lines under its title: whose code trained, what the check found, and why a
    model has no nll_is (`absent`: model -> why)."""
    classes = ", ".join(f"{CLASSES[m]}.forward" for m in found.models)
    lines = [N_("Your code that ran: {classes} from {file}; the loss: {loss}.", classes=classes,
                file=Path(found.file).name, loss=found.loss)]
    errors = [m for m in found.mistakes if not m.warning]
    lines.append(N_("aelab check found {errors} mistake(s) and {warnings} warning(s) in it.", errors=len(errors),
                    warnings=len(found.mistakes) - len(errors)))
    lines += [N_("{model} {code} at {where}: {message}", model=m.model, code=m.code, where=m.where or "-",
                 message=m.message) for m in found.mistakes]
    lines += [N_("nll_is is left out for the {model}: {why}", model=model, why=why) for model, why in absent.items()]
    return lines


def nll_absent(model: Path, loss: str, models: list[str]) -> dict[str, str]:
    """Why each of the student's models will have no nll_is, where it will not (course/model.py)."""
    absent = {}
    for kind in models:
        if kind == "AE":  # a deterministic code has no NLL to leave out
            continue
        built = course_model.build(SkeletonSettings(str(model), loss, kind), (1, 28, 28), 10, Sizes().latent_size, 1)
        if built.latent.why_no_nll:
            absent[kind] = built.latent.why_no_nll
    return absent


def main(model_file: str, loss_file: str | None, out: Path, how: pipeline.Running) -> tuple[Path, dict[str, str]]:
    """The main job on a student's model.py: checked, then its classes trained, evaluated and
    reported as a study under `out` (`how.lang`: the report's and the check's language)."""
    lang = how.lang
    model = Path(model_file).resolve()
    if not model.is_file():
        raise AelabError(f"--model {model_file}: no such file")
    StudyDir(out).check()
    loss = str(Path(loss_file).resolve()) if loss_file else (
        str(model.parent / "main.py") if (model.parent / "main.py").is_file() else NO_LOSS)
    base = run.base_config()
    batch = run.fixed_batch(registry.build_data(base))
    with contextlib.redirect_stdout(sys.stderr):
        found = course.check_file(model, None if loss == NO_LOSS else loss, batch, Sizes())
    if not found.models:
        raise AelabError(f"{model}: no AutoEncoder, VariationalAutoEncoder nor ConditionalVariationalAutoEncoder "
                         "to train")
    print(course.text(found, lang), file=sys.stderr)
    StudyDir(out).begin()  # a study's folder from here on: run_study's check accepts it
    write_atomic(out / "check.json", json.dumps(course.records(found, lang), indent=2, ensure_ascii=False))
    study = out / "course.toml"
    text = study_text(model, loss, found.models)  # the classes their file has: an unfinished CVAE is left out
    if not study.is_file() or study.read_text() != text:
        write_atomic(study, text)
    return pipeline.run_study(study, out, how, said=tuple(said(found, nll_absent(model, loss, found.models))))
