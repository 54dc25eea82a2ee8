"""`aelab check model.py` on the assignment's skeleton as students write it: every mistake
code named on two structurally different skeletons (skeletons.py) at the right line, five
correct conventions passing with none, the student's own forward and Loss being what trains,
and the course example passing."""

import json
from pathlib import Path

import pytest

import skeletons as sk
from aelab import config, language, registry
from aelab.checking import course, run
from aelab.course import code
from aelab.training import train
from aelab.runs.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "course" / "model.py"
SIZES = code.Sizes(hidden_size=64)
STEPS = 8  # the student's own steps for "the loss falls": enough to see it, where the mistakes are the point
VAES = ("VAE", "CVAE")


@pytest.fixture(scope="module")
def batch():
    return run.fixed_batch(registry.build_data(run.base_config()))


def _spread(shape: str) -> str:
    return sk.SHAPES[shape][2]["SPREAD"]


KLS = {"std": "0.5 * torch.sum(sigma ** 2 + mu ** 2 - 1 - torch.log(sigma ** 2)) / mu.shape[0]",
       "var": "0.5 * torch.sum(sigma + mu ** 2 - 1 - torch.log(sigma)) / mu.shape[0]"}

# code -> for each shape: (its changes, the kinds it is looked for in, the file and a text of the line to blame or None)
MISTAKES = {
    "uniform-noise": {
        "split": ({"SAMPLE": "mu + torch.exp(0.5 * sigma) * torch.rand_like(sigma)"}, VAES, "torch.rand_like"),
        "trunk": ({"SAMPLE": "mu + torch.exp(0.5 * sigma) * torch.rand(mu.shape)"}, VAES, "torch.rand(mu.shape)")},
    "logvar-as-std": {
        shape: ({"SAMPLE": "mu + sigma * torch.randn_like(sigma)"}, VAES, "z = mu + sigma *") for shape in sk.SHAPES},
    "var-as-std": {
        shape: ({"SPREAD": f"torch.exp({_spread(shape)})", "SAMPLE": "mu + sigma * torch.randn_like(sigma)",
                 "KL": KLS["var"]}, VAES, "z = mu + sigma *") for shape in sk.SHAPES},
    "std-as-logvar": {
        shape: ({"SPREAD": f"F.softplus({_spread(shape)})", "KL": KLS["std"]}, VAES, "z = mu + torch.exp(0.5")
        for shape in sk.SHAPES},
    "mean-is-logvar": {shape: ({"MU": _spread(shape)}, VAES, "mu = ") for shape in sk.SHAPES},
    "no-sampling": {shape: ({"SAMPLE": "mu"}, VAES, None) for shape in sk.SHAPES},
    "kl-sign": {
        "split": ({"KL": "0.5 * torch.sum(1 + sigma - mu.pow(2) - sigma.exp()) / mu.shape[0]"}, VAES, "return 0.5"),
        "trunk": ({"KL": "(0.5 * (1 + sigma - mu ** 2 - torch.exp(sigma)).sum(dim=1)).mean()"}, VAES, "kl = ")},
    "kl-half": {
        "split": ({"KL": "-torch.sum(1 + sigma - mu.pow(2) - sigma.exp()) / mu.shape[0]"}, VAES, "return -torch"),
        "trunk": ({"KL": "(-0.25 * (1 + sigma - mu ** 2 - torch.exp(sigma)).sum(dim=1)).mean()"}, VAES, "kl = ")},
    "kl-formula": {  # seed 003's: -(1 + sigma - mu^2 - sigma^2) / 2
        "split": ({"KL": "-0.5 * torch.sum(1 + sigma - mu.pow(2) - sigma ** 2) / mu.shape[0]"}, VAES, "return -0.5"),
        "trunk": ({"KL": "(-(1 + sigma - mu ** 2 - sigma ** 2) / 2).sum(1).mean()"}, VAES, "kl = ")},
    "kl-missing": {shape: ({"TOTAL": "recon + 0 * kl.detach()"}, VAES, None) for shape in sk.SHAPES},
    "kl-weight": {
        "split": ({"LOSS_INIT": "self.beta = 0.5", "TOTAL": "recon + self.beta * kl"}, VAES, "return -0.5"),
        "trunk": ({"TOTAL": "recon + kl * (epoch + 1) / epoch_num"}, VAES, "kl = ")},
    "recon-mean-over-pixels": {  # seed 001's nn.L1Loss(); BCE's default mean
        "split": ({"RECON": "nn.L1Loss()(x_, x)"}, ("AE", *VAES), "return nn.L1Loss"),
        "trunk": ({"RECON": "F.binary_cross_entropy_with_logits(x_, x)"}, ("AE", *VAES), "recon = ")},
    "kl-mean-over-dims": {  # seed 001's torch.mean
        "split": ({"KL": "-0.5 * torch.mean(1 + sigma - mu.pow(2) - sigma.exp())"}, VAES, "return -0.5"),
        "trunk": ({"KL": "(-0.5 * (1 + sigma - mu ** 2 - torch.exp(sigma))).mean()"}, VAES, "kl = ")},
    "batch-sum": {
        "split": ({"RECON": 'F.binary_cross_entropy_with_logits(x_, x, reduction="sum")'}, ("AE", *VAES),
                  "return F.binary"),
        "trunk": ({"KL": "(-0.5 * (1 + sigma - mu ** 2 - torch.exp(sigma))).sum()"}, VAES, "kl = ")},
    "double-sigmoid": {
        "split": ({"DEC_OUT": "torch.sigmoid(out)"}, ("AE", *VAES), "return F.binary"),
        "trunk": ({"RECON": 'F.binary_cross_entropy(x_, x, reduction="sum") / x.shape[0]'}, ("AE", *VAES),
                  "recon = ")},
    "label-ignored": {  # the label reaches the encoder only
        "split": ({"LABEL_IN": "torch.zeros(zs.shape[0], 10)"}, ("CVAE",), None),
        "trunk": ({"LABEL_IN": "torch.zeros_like(c)"}, ("CVAE",), None)},
    "unused-parameter": {
        shape: ({"EXTRA_LAYER": "self.extra = nn.Linear(4, 4)"}, ("AE", *VAES), "self.extra") for shape in sk.SHAPES},
}

# five correct conventions: each passes with no mistake
CORRECT = {
    "log-variance": lambda shape: {},
    "std through softplus": lambda shape: {"SPREAD": f"F.softplus({_spread(shape)})",
                                           "SAMPLE": "mu + sigma * torch.randn_like(sigma)", "KL": KLS["std"]},
    "std through exp": lambda shape: {"SPREAD": f"torch.exp({_spread(shape)})",
                                      "SAMPLE": "mu + sigma * torch.randn_like(sigma)", "KL": KLS["std"]},
    "variance with sqrt": lambda shape: {"SPREAD": f"torch.exp({_spread(shape)})",
                                         "SAMPLE": "mu + torch.sqrt(sigma) * torch.randn_like(sigma)", "KL": KLS["var"]},
    "torch.distributions.Normal": lambda shape: {
        "SAMPLE": "torch.distributions.Normal(mu, torch.exp(0.5 * sigma)).rsample()"},
}


def _kinds(shape: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The models a case is looked for in: the split skeleton's VAE (label inside the encoder, a tuple
    returned), the trunk skeleton's VAE (a dict) and CVAE (label outside, a reordered tuple), each
    shape's AE (a tuple, a bare tensor) where the case is the AE's too, and a CVAE-only case in both."""
    if kinds == ("CVAE",):
        return kinds
    return tuple(k for k in kinds if k == "AE" or k == ("VAE" if shape == "split" else k))


def _check(folder: Path, shape: str, changes: dict, kinds=tuple(code.CLASSES), batch=None) -> course.Findings:
    path = sk.write(folder, shape, **changes)
    return course.check_file(path, None, batch, SIZES, kinds=kinds, steps=STEPS)


def test_the_course_example_passes_with_no_mistake(batch):
    found = course.check_file(EXAMPLE, None, batch, SIZES)
    assert found.models == ["AE", "VAE", "CVAE"]
    assert found.loss == "main.py's Loss"
    assert not found.mistakes and not found.failed


@pytest.mark.parametrize("shape", sorted(sk.SHAPES))
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_mistake_is_named_at_its_line(tmp_path, batch, mistake, shape):
    changes, kinds, needle = MISTAKES[mistake][shape]
    kinds = _kinds(shape, kinds)
    found = _check(tmp_path / "sub", shape, changes, kinds, batch)
    for kind in kinds:
        named = [m for m in found.mistakes if m.model == kind and m.code == mistake]
        assert named, f"{kind}: {[(m.code, m.where) for m in found.mistakes if m.model == kind]}"
        if needle is None:
            assert named[0].where is None
        else:
            name = named[0].where.split(":")[0]
            assert named[0].where in sk.lines_of(tmp_path / "sub" / name, needle)
        assert str(named[0].message)


@pytest.mark.parametrize("shape", sorted(sk.SHAPES))
@pytest.mark.parametrize("convention", sorted(CORRECT))
def test_a_correct_skeleton_passes_whatever_its_convention(tmp_path, batch, convention, shape):
    found = _check(tmp_path / "sub", shape, CORRECT[convention](shape), _kinds(shape, VAES), batch)
    assert found.mistakes == [] and not found.failed, [(m.model, m.code, m.where) for m in found.mistakes]


COUNTING = '''
CALLS = {"forward": 0, "loss": 0}
'''


def test_the_students_forward_and_loss_are_what_trains(tmp_path):
    """A skeleton that counts its calls sees one forward and one Loss call per training step."""
    folder = tmp_path / "counting"
    path = sk.write(folder, "split")
    model = path.read_text().replace("class VariationalAutoEncoder", COUNTING + "\n\nclass VariationalAutoEncoder")
    model = model.replace("        mu, sigma = self.encoder(xs)\n",
                          "        CALLS['forward'] += torch.is_grad_enabled()\n        mu, sigma = self.encoder(xs)\n", 1)
    path.write_text(model)
    main = (folder / "main.py").read_text().replace(
        "        recon = self.recon_loss(x, x_)\n",
        "        from model import CALLS\n        CALLS['loss'] += torch.is_grad_enabled()\n"
        "        recon = self.recon_loss(x, x_)\n")
    (folder / "main.py").write_text(main)
    (tmp_path / "vae.toml").write_text(f'[data]\nval_size = 64\ntrain_size = 320\n[model.skeleton]\nfile = "{path}"\n'
                                       '[train]\nepochs = 2\nbatch_size = 64\nprecision = "float32"\n')
    cfg = config.load(tmp_path / "vae.toml")
    data = registry.build_data(cfg)
    run_dir = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run_dir, data, train.Options(progress=False))
    calls = code._LOADED[str(path.resolve())].CALLS
    steps = 2 * data.steps_per_epoch(64)
    assert calls == {"forward": steps, "loss": steps}
    # the run keeps what trained: both files, their sha256 and a copy of each
    kept = next(p for p in run_dir.user_parts() if p["slot"] == "skeleton")
    assert [Path(f["path"]).name for f in kept["files"]] == ["model.py", "main.py"]
    assert (run_dir.path / "code" / "model.py").read_text() == path.read_text()


def test_json_names_the_mistakes_in_the_students_language(tmp_path, batch):
    path = sk.write(tmp_path / "s", "split", SAMPLE="mu + sigma * torch.rand_like(sigma)")
    found = course.check_file(path, None, batch, SIZES, kinds=("VAE",), steps=STEPS)
    assert found.failed
    said = json.loads(json.dumps(course.records(found, language.get("zh")), ensure_ascii=False))
    assert set(said) >= {"file", "models", "checks", "mistakes"}
    assert {m["code"] for m in said["mistakes"]} == {"uniform-noise", "logvar-as-std"}
    uniform = next(m for m in said["mistakes"] if m["code"] == "uniform-noise")
    assert uniform["where"] in sk.lines_of(path, "torch.rand_like") and "均匀噪声" in uniform["message"]
    assert "uniform-noise  model.py:" in course.text(found, language.get("en"))


def test_code_that_raises_is_one_line_at_its_file_and_line(tmp_path, batch):
    path = sk.write(tmp_path / "s", "trunk", SAMPLE="mu + sigma.undefined_method()")
    with pytest.raises(code.StudentError) as raised:
        course.check_file(path, None, batch, SIZES, kinds=("VAE",))
    said = str(raised.value)
    assert "\n" not in said and said.split(": ")[0] in sk.lines_of(path, "undefined_method")
    assert "AttributeError" in said


def test_the_docs_table_names_every_mistake_code():
    from aelab.checking import course_words

    page = (ROOT / "docs" / "own-model.md").read_text()
    for mistake in course_words.CODES:
        assert f"`{mistake}`" in page or mistake.startswith("<"), mistake
    assert set(MISTAKES) | {"<kl>-as-<sampling>"} >= set(course_words.CODES) - {"logvar-as-std"}


def test_every_skeleton_setting_reaches_the_model(tmp_path):
    """[model.skeleton]: file, loss, type and hidden_size each change what is built or what trains."""
    other = sk.write(tmp_path / "other", "trunk")

    def built(**skeleton):
        table = {"file": str(EXAMPLE), **skeleton}
        cfg = config.from_dict({"model": {"skeleton": table}}, "test")
        model = registry.build_model(cfg, (1, 28, 28), 10)
        return cfg, model, type(model.encoder.course.net).__name__, model.objective.student.loss is None

    cfg, model, cls, no_loss = built()
    assert (cls, no_loss, cfg.model.short) == ("VariationalAutoEncoder", False, "VAE")
    assert cfg.model.skeleton.loss == "" and not no_loss  # main.py beside model.py
    assert built(type="CVAE")[2] == "ConditionalVariationalAutoEncoder" and built(type="CVAE")[0].model.short == "CVAE"
    assert built(type="AE")[0].model.short == "AE"
    assert built(loss="none")[3]
    assert built(file=str(other))[1].encoder.course.model_file == other.resolve()
    widths = lambda m: [p.shape for p in m.parameters()]  # noqa: E731
    assert widths(built(hidden_size=32)[1]) != widths(model)


@pytest.mark.slow
def test_the_main_job_on_the_example_students_classes_reports_nll_is(tmp_path):
    """`aelab run --model examples/course/model.py --epochs 1`: the report, with nll_is, and what the check found."""
    from aelab import cli

    assert cli.main(["run", "--model", str(EXAMPLE), "--epochs", "1", "--k", "20", "--out", str(tmp_path / "main")]) == 0
    page = (tmp_path / "main" / "report.html").read_text()
    assert "Your code that ran" in page and "nll_is" in page
    for name in ("ae", "vae", "cvae", "vae-2d"):
        record = json.loads((tmp_path / "main" / "runs" / name / "eval.json").read_text())
        assert ("nll_is" in record) == (name != "ae")
    assert json.loads((tmp_path / "main" / "check.json").read_text())["mistakes"] == []


def test_a_model_whose_codes_are_not_gaussian_says_why_it_has_no_nll_is(tmp_path):
    """aelab's nll_is weighs a Gaussian q(z|x) and a Bernoulli p(x|z): a student's uniform draws, or
    their L1 loss, leave it out, saying why."""
    good = registry.build_model(config.from_dict({"model": {"skeleton": {"file": str(EXAMPLE)}}}, "t"), (1, 28, 28), 10)
    assert good.latent.why_no_nll == ""
    path = sk.write(tmp_path / "u", "split", SAMPLE="mu + torch.exp(0.5 * sigma) * torch.rand_like(sigma)")
    bad = registry.build_model(config.from_dict({"model": {"skeleton": {"file": str(path)}}}, "t"), (1, 28, 28), 10)
    assert "not Gaussian" in bad.latent.why_no_nll
    path = sk.write(tmp_path / "l1", "trunk", RECON="(x_ - x).abs().sum(1).mean()")
    l1 = registry.build_model(config.from_dict({"model": {"skeleton": {"file": str(path)}}}, "t"), (1, 28, 28), 10)
    assert "reconstructs with l1, not the Bernoulli" in l1.latent.why_no_nll


@pytest.mark.parametrize("top, said", [("raise RuntimeError('no GPU here')\n", "main.py:1: importing it raised RuntimeError"),
                                       ("import sys\nsys.exit(0)\n", "main.py called sys.exit(0) on import")])
def test_a_main_py_that_cannot_be_imported_leaves_aelabs_elbo_saying_why(tmp_path, batch, top, said):
    path = sk.write(tmp_path / "s", "split")
    (tmp_path / "s" / "main.py").write_text(top + (tmp_path / "s" / "main.py").read_text())
    found = course.check_file(path, None, batch, SIZES, kinds=("VAE",), steps=STEPS)
    assert found.loss.startswith(said) and not found.failed


def test_a_decoder_given_mu_and_sigma_too_is_replayed_with_the_code(tmp_path, batch):
    """The skeleton's hint: a VAE's decoder may take the mean and spread in **otherinputs. Moving the
    mean moves them as well as z; z is the one that also moves with the noise."""
    path = sk.write(tmp_path / "s", "split")
    text = path.read_text().replace("        x_ = self.decoder(z)\n", "        x_ = self.decoder(z, mu=mu, sigma=sigma)\n")
    path.write_text(text.replace("        x_ = self.decoder(z, ys)\n", "        x_ = self.decoder(z, ys, mu=mu, sigma=sigma)\n"))
    found = course.check_file(path, None, batch, SIZES, kinds=VAES, steps=STEPS)
    assert found.mistakes == [] and not found.failed
    cfg = config.from_dict({"model": {"skeleton": {"file": str(path), "type": "CVAE"}}}, "t")
    model = registry.build_model(cfg, (1, 28, 28), 10)
    assert model.encoder.course.layout.code.arg == 0
    assert model.sample(20).shape == (20, 1, 28, 28)
