"""`aelab check model.py`: the assignment's skeleton as the student wrote it, run on real
digits, its mistakes named at their lines.

Every model class of the file (AE, VAE, CVAE) is built as the assignment's main.py builds it
and run through the student's own `forward` and `Loss` (course/student.py). What is found,
is found from values: the codes their sampling draws for known encoder outputs, the change of
their Loss when one input moves (course/fits.py), the decoder's output for two labels, the
gradients. A `Watch` over their code (course/trace.py) then names the file and line: the
random draw, the operation that first took the tensor in question.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aelab import registry
from aelab.checking import course_words as words
from aelab.checking import run
from aelab.course import code, fits, replay
from aelab.course.model import StudentObjective
from aelab.course.student import Student
from aelab.course.trace import Watch
from aelab.data.splits import Batch
from aelab.language import N_, Text

STEPS = 40  # Adam steps of the student's own training step on the fixed batch
EPOCHS = 10  # the epoch_num their Loss is told, where it takes one


@dataclass
class LogitsToProbabilities(Exception):
    """Their Loss raises on their own logits and runs on probabilities: named, and nothing after it can run."""


@dataclass
class Mistake:
    code: str
    model: str
    where: str | None  # 'model.py:42', or None where no one line is to blame
    message: Text
    warning: bool = False  # said, but not a failure (a KL weight set on purpose, a loss summed over the batch)


@dataclass
class Check:
    model: str
    name: str
    passed: bool
    detail: str  # a Text where it has words to translate


@dataclass
class Findings:
    file: str
    loss: str  # what trains: "main.py's Loss", or why aelab's ELBO stands in
    models: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    mistakes: list[Mistake] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(not m.warning for m in self.mistakes) or any(not c.passed for c in self.checks)


def present(module) -> list[str]:
    """The assignment's model classes that the student's model.py defines, in its order."""
    return [t for t, name in code.CLASSES.items() if isinstance(getattr(module, name, None), type)]


def check_file(model_file: str | Path, loss_file: str | Path | None, batch: Batch, sizes: code.Sizes,
               num_classes: int = 10, kinds: tuple[str, ...] = tuple(code.CLASSES), steps: int = STEPS) -> Findings:
    """Every model class of `model_file` (of `kinds`), checked on the fixed batch of real images;
    `steps` of their own training step for the check that the loss falls."""
    model_file = Path(model_file).resolve()
    if loss_file is None and (model_file.parent / "main.py").is_file():
        loss_file = model_file.parent / "main.py"
    module = code.import_model(model_file)
    found = Findings(str(model_file), "")
    for kind in [k for k in present(module) if k in kinds]:
        _check_model(found, kind, (model_file, loss_file), batch, sizes, num_classes, steps)
    if not found.models:
        found.checks.append(Check("-", "the assignment's classes", False, words.no_classes()))
    return found


def _check_model(found: Findings, kind: str, files: tuple[Path, Path | None], batch: Batch, sizes: code.Sizes,
                 num_classes: int, steps: int) -> None:
    torch.manual_seed(0)
    model_file, loss_file = files
    files = {str(model_file)} | ({str(Path(loss_file).resolve())} if loss_file else set())
    with Watch(files) as built:
        s = Student(model_file, loss_file, kind, sizes, num_classes)
    found.models.append(kind)
    found.loss = N_("{file}'s Loss", file=Path(loss_file).name) if s.loss is not None else s.loss_why
    said = lambda code_, where, message, warning=False: found.mistakes.append(  # noqa: E731
        Mistake(code_, kind, where, message, warning))
    xs, ys = batch.x.flatten(1)[:, :sizes.x_dim], batch.y if s.conditional else None
    layout = s.learn(xs, ys)
    with Watch(files) as w:
        torch.manual_seed(0)
        out, enc, decoded, x_ = s.step(xs, ys)
    found.checks.append(Check(kind, "forward runs on real digits", True, f"x_ {tuple(x_.shape)}"))
    kl_convention = None
    if s.loss is not None:
        try:
            kl_convention = _loss(s, said, xs, x_, enc, files)
        except LogitsToProbabilities:
            found.checks.append(Check(kind, "the Loss runs on x_", False, N_("it raises on the decoder's logits")))
            return
    if s.stochastic:
        _sampling(s, said, w, enc, layout.sampling, kl_convention)
        if torch.equal(enc[0], enc[1]):
            said("mean-is-logvar", w.made(enc[0]), words.mean_is_logvar())
    if s.conditional:
        z = torch.randn(2, sizes.latent_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            outs = [replay.replay(s.net.decoder, layout.decoder, layout.code, z, torch.full((2,), k))
                    for k in range(num_classes)]
        if all(torch.allclose(o, outs[0], atol=1e-6) for o in outs[1:]):
            said("label-ignored", None, words.label_ignored())
    _gradients(s, kind, said, found, xs, ys, built)
    found.checks.append(_falls(s, kind, xs, ys, steps))


def _loss_of(s: Student, xs, ys, epoch: int = EPOCHS - 1):
    """The loss of one training step as it trains: their forward, then their Loss, or aelab's ELBO
    on their sampling where they have none (StudentObjective, one forward either way)."""
    if s.loss is None:
        return StudentObjective(s)(None, Batch(xs, ys), None)["loss"]
    out, enc, decoded, x_ = s.step(xs, ys)
    return s.loss_value(xs, x_, *(enc if s.stochastic else ()), epoch=epoch, epochs=EPOCHS)


def _loss(s: Student, said, xs, x_, enc, files) -> str | None:
    """The Loss's mistakes; the KL's convention where one matches."""
    x_ = x_.detach()
    mu, spread = (torch.zeros_like(enc[0]), torch.ones_like(enc[1])) if s.stochastic else (None, None)
    probabilities = bool(((x_ >= 0) & (x_ <= 1)).all())
    loss_file = Path(s.loss_file).name
    try:
        with Watch(files) as w:
            s.loss_value(xs, x_, *((mu, spread) if s.stochastic else ()))
    except code.StudentError as e:
        if probabilities:
            raise
        s.loss_value(xs, torch.sigmoid(x_), *((mu, spread) if s.stochastic else ()))  # raises again: theirs to fix
        said("double-sigmoid", str(e).split(": ")[0], words.logits_to_probabilities())
        raise LogitsToProbabilities from None
    recon_line = w.first_taking(x_, loss_file)
    r = fits.recon_fit(s, xs, x_, mu, spread)
    if r.form is not None:
        reading = r.reading(len(xs), s.sizes.x_dim)
        if probabilities and r.form == "bce-logits":
            said("double-sigmoid", recon_line, words.probabilities_to_logits())
        if reading and reading["dims"] != 1:  # an AE has no KL to outweigh it: only its units are off
            said("recon-mean-over-pixels", recon_line, words.recon_mean(s.sizes.x_dim) if s.stochastic
                 else words.recon_mean_ae(s.sizes.x_dim), warning=not s.stochastic)
        if reading and reading["batch"] != 1:
            said("batch-sum", recon_line, words.batch_sum(words.RECON), warning=True)
    if not s.stochastic:
        return None
    passed = spread.clone()
    with Watch(files) as w:
        s.loss_value(xs, x_, mu, passed)
    kl_line = w.first_taking(passed, loss_file) or w.first_taking(passed)
    late = fits.kl_fit(s, xs, x_, EPOCHS - 1, EPOCHS)
    early = fits.kl_fit(s, xs, x_, 1, EPOCHS) if s.loss_takes_epoch else late
    if late.flat:
        said("kl-missing", None, words.kl_missing())
        return None
    if late.form is None:
        said("kl-formula", kl_line, words.kl_formula())
        return None
    if early.form == late.form and not math.isclose(early.factor, late.factor, rel_tol=fits.FACTOR):
        said("kl-weight", kl_line, words.kl_annealing(early.factor, late.factor, EPOCHS), warning=True)
        return late.form
    reading = late.reading(len(xs), s.sizes.latent_size)
    if reading is None or _set_on_purpose(s.loss, late.factor):
        said("kl-weight", kl_line, words.kl_weight(late.factor), warning=True)
        return late.form
    if reading["sign"] < 0:
        said("kl-sign", kl_line, words.kl_sign())
    if reading["half"] != 1:
        said("kl-half", kl_line, words.kl_half(reading["half"]))
    if reading["dims"] != 1:
        said("kl-mean-over-dims", kl_line, words.kl_mean(s.sizes.latent_size))
    if reading["batch"] != 1:
        said("batch-sum", kl_line, words.batch_sum(words.KL), warning=True)
    return late.form


def _set_on_purpose(loss, factor: float) -> bool:
    """A number the Loss keeps (self.beta = 0.5) that is the KL's factor: a weight the student chose."""
    values = [v for v in vars(loss).values() if isinstance(v, (int, float)) and not isinstance(v, bool) and v]
    return any(math.isclose(abs(factor), abs(v), rel_tol=fits.FACTOR) for v in values)


def _sampling(s: Student, said, w: Watch, enc, sampling, kl_convention: str | None) -> None:
    model_file = Path(s.model_file).name
    line = w.first_taking(enc[1], model_file)
    if sampling.convention is None and sampling.scale == 0:
        said("no-sampling", line, words.no_sampling())
        return
    if sampling.uniform:
        uniform = next((where for kind, where in w.draws if kind == "uniform"), None)
        said("uniform-noise", uniform or line, words.uniform_noise())
    used = sampling.convention
    if used is None:
        return
    lowest = float(enc[1].detach().min())
    if used in ("std", "var") and lowest < 0 and kl_convention in (None, used):
        said(f"logvar-as-{used}", line, words.negative_spread(used, lowest))
    elif kl_convention is not None and kl_convention != used:
        said(f"{kl_convention}-as-{used}", line, words.mixed_conventions(kl_convention, used))


def _gradients(s: Student, kind: str, said, found: Findings, xs, ys, built: Watch) -> None:
    s.net.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    value = _loss_of(s, xs, ys)
    if not torch.isfinite(value):
        found.checks.append(Check(kind, "a finite loss on real digits", False, f"{float(value)}"))
        return
    with code.student(s.files, "loss.backward()"):
        value.backward()
    lines = {op.out.data_ptr(): op.where for op in built.ops if isinstance(op.out, torch.Tensor)}
    unused: dict[str | None, list[str]] = {}  # the line that built them -> the modules without a gradient
    for name, p in s.net.named_parameters():
        if p.grad is None or not bool(p.grad.abs().sum()):
            modules = unused.setdefault(lines.get(p.data_ptr()), [])
            if name.rpartition(".")[0] not in modules:
                modules.append(name.rpartition(".")[0])
    for where, modules in unused.items():
        said("unused-parameter", where, words.unused(", ".join(modules)))
    found.checks.append(Check(kind, "a gradient on every parameter", not unused,
                              N_("{n} module(s) without one", n=len(unused)) if unused else N_("every parameter")))
    s.net.zero_grad(set_to_none=True)


def _falls(s: Student, kind: str, xs, ys, steps: int) -> Check:
    """The student's own step, `steps` times on the batch: their loss at the same draws falls."""
    state = {k: v.clone() for k, v in s.net.state_dict().items()}
    opt = torch.optim.Adam(s.net.parameters(), lr=1e-3)

    def measured():
        torch.manual_seed(1)
        with torch.no_grad():
            return float(_loss_of(s, xs, ys))

    before = measured()
    for _ in range(steps):
        opt.zero_grad()
        torch.manual_seed(2)
        _loss_of(s, xs, ys).backward()
        opt.step()
    after = measured()
    s.net.load_state_dict(state)
    ok = math.isfinite(after) and after < before
    return Check(kind, "the loss falls on a fixed batch", ok,
                 N_("{before:.4g} -> {after:.4g} in {steps} Adam steps", before=before, after=after, steps=steps))


def records(found: Findings, lang) -> dict:
    """`--json`: {"file", "models", "checks", "mistakes": [{"code", "model", "where", "message"}]}."""
    return {"file": found.file, "loss": found.loss, "models": found.models,
            "checks": [{"model": c.model, "check": c.name, "passed": c.passed, "detail": c.detail} for c in found.checks],
            "mistakes": [{"code": m.code, "model": m.model, "where": m.where, "message": lang(m.message),
                          "warning": m.warning} for m in found.mistakes]}


def text(found: Findings, lang) -> str:
    """The findings for a student: each check, then each mistake at its line, in their language."""
    lines = [f"aelab check {found.file}", lang(words.trained_with(found.loss)), ""]
    for c in found.checks:
        lines.append(f"{'ok  ' if c.passed else 'FAIL'}  {c.model:<5} {lang(words.CHECKS.get(c.name, c.name))}: "
                     f"{lang(c.detail)}")
    if found.mistakes:
        lines.append("")
    for m in found.mistakes:
        mark = lang(words.WARNING) if m.warning else lang(words.MISTAKE)
        lines.append(f"{mark}  {m.model:<5} {m.code}  {m.where or '-'}")
        lines.append(f"      {lang(m.message)}")
    errors = sum(not m.warning for m in found.mistakes)
    lines += ["", lang(words.summary(errors, len(found.mistakes) - errors))]
    return "\n".join(lines)


def main(model_file: str, loss_file: str | None, sizes: code.Sizes, lang, as_json: bool = False) -> int:
    """`aelab check model.py`: 0 when nothing fails, 1 when something does; what the student's code raises: exit 2."""
    with contextlib.redirect_stdout(sys.stderr):  # what their code prints stays out of the answer
        code.import_model(Path(model_file))  # a file that cannot be imported fails before the digits are read
        batch = run.fixed_batch(registry.build_data(run.base_config()))
        found = check_file(model_file, loss_file, batch, sizes)
    print(json.dumps(records(found, lang), indent=2, ensure_ascii=False) if as_json else text(found, lang))
    return 1 if found.failed else 0
