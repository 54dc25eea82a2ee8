"""Study files: variants crossed with a grid, readable run names, every bad key refused."""

import json
import os

import pytest

from aelab.cli import main
from aelab.errors import AelabError
from aelab.studies import pipeline as job
from aelab.studies import study
from conftest import JUDGED

BASE = """
[data]
val_size = 500
train_size = 2000
[model.network]
hidden = [64]
[train]
epochs = 1
"""


def _write(tmp_path, text, base=BASE):
    (tmp_path / "base.toml").write_text(base)
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_the_default_study_is_ae_vae_cvae_on_identical_data():
    s = study.load(job.DEFAULT_STUDY)
    assert [r.name for r in s.runs] == ["ae", "vae", "cvae", "vae-2d"]
    assert [r.config.model.short for r in s.runs] == ["AE", "VAE", "CVAE", "VAE"]
    assert {r.config.data for r in s.runs} == {s.runs[0].config.data}  # the same data for every run
    assert s.runs[0].config.data.val_size == 5000 and s.runs[3].config.model.latent_dim == 2
    assert s.nll_k == 100 and s.title and s.question


def test_variants_cross_the_grid_with_readable_names(tmp_path):
    s = study.load(_write(tmp_path, """
title = "t"
config = "base.toml"
set = ["train.epochs=2"]
[variants.ae]
set = ["model.latent.name=point"]
[variants.vae]
[grid]
"model.network.hidden" = [[64], [128, 64]]
"train.lr" = [1e-3, 1e-2]
"""))
    names = [r.name for r in s.runs]
    assert names[:4] == ["ae-hidden=64-lr=0.001", "ae-hidden=64-lr=0.01", "ae-hidden=128x64-lr=0.001",
                         "ae-hidden=128x64-lr=0.01"] and len(names) == 8
    run = s.runs[2]
    assert run.config.model.short == "AE" and run.config.model.network.hidden == (128, 64) and run.config.train.lr == 1e-3
    assert run.config.train.epochs == 2 and run.config.data.train_size == 2000
    assert run.varied == {"model.latent.name": "point", "model.network.hidden": [128, 64], "train.lr": 1e-3}


def test_figure_options_of_a_study(tmp_path):
    s = study.load(_write(tmp_path, 'config = "base.toml"\n[figures]\npull = 0.5\nnoise_levels = [0, 2]\n'))
    assert (s.figures.pull, s.figures.noise_levels, s.figures.fit_codes) == (0.5, (0.0, 2.0), 256)
    assert study.load(_write(tmp_path, 'config = "base.toml"\n')).figures.pull == 0.25


def test_a_grid_alone_and_a_variant_with_its_own_config(tmp_path):
    (tmp_path / "other.toml").write_text('[model]\nlatent_dim = 3\n[model.latent]\nname = "point"\n')
    s = study.load(_write(tmp_path, """
config = "base.toml"
[variants.mine]
config = "other.toml"
[variants.packaged]
config = "dae_mnist.toml"
"""))
    assert [(r.name, r.config.model.latent_dim) for r in s.runs] == [("mine", 3), ("packaged", 2)]
    assert s.runs[1].config.model.corruption.sigma == 0.4 and s.title == "s"
    g = study.load(_write(tmp_path, 'config = "base.toml"\n[grid]\n"model.latent_dim" = [1, 2]\n'))
    assert [r.name for r in g.runs] == ["latent_dim=1", "latent_dim=2"]


@pytest.mark.parametrize("text, words", [
    ('config = "base.toml"\nepochs = 3\n', ["unknown key 'epochs'", "valid keys"]),
    ('config = "base.toml"\n[grid]\n"model.size" = [1]\n', ["s.toml", "unknown key 'model.size'"]),
    ('config = "base.toml"\n[grid]\n"train.lr" = []\n', ["non-empty lists"]),
    ('config = "nowhere.toml"\n', ["config 'nowhere.toml' not found"]),
    ('title = "no config"\n', ["no config"]),
    ('config = "base.toml"\nset = "model.latent_dim=2"\n', ["set must be a list"]),
    ('config = "base.toml"\n[variants.a]\nsets = []\n', ["variants.a", "unknown key 'sets'"]),
    ('config = "base.toml"\n[variants.a]\nset = ["model.latent.name=gan"]\n', ["s.toml", "model.latent.name", "gan"]),
    ('config = "base.toml"\n[variants.a]\nset = ["model.kind=ae"]\n', ["s.toml", "model.kind has moved"]),
    ('config = "base.toml"\n[grid]\n"train.lr" = [0.1, 0.1]\n', ["share the name"]),
    ('config = "base.toml"\nnll_k = 0\n', ["nll_k"]),
    ('config = "base.toml"\n[grid\n', ["not valid TOML"]),
    ('config = "base.toml"\n[figures]\npull = 1.5\n', ["figures.pull must be at most 1"]),
    ('config = "base.toml"\n[figures]\nfit_codes = 1\n', ["figures.fit_codes"]),
    ('config = "base.toml"\n[figures]\nnoise_levels = [-1]\n', ["figures.noise_levels"]),
    ('config = "base.toml"\n[figures]\ndelta = 0.2\n', ["unknown key 'figures.delta'", "valid keys: figures.fit_codes"]),
    ('config = "base.toml"\n[variants.a]\npublished = { nll = 86.76 }\n', ["variants.a.published", "unknown metric 'nll'"]),
    ('config = "base.toml"\n[variants.a]\npublished = { nll_is = "86" }\n', ["published.nll_is must be a number"]),
    ('config = "base.toml"\n[variants.a]\npublished = 86.76\n', ["variants.a.published must be a table"]),
])
def test_bad_studies_are_refused_naming_the_file_and_key(tmp_path, text, words):
    with pytest.raises(AelabError) as e:
        study.load(_write(tmp_path, text))
    assert all(w in str(e.value) for w in words), str(e.value)


def test_run_with_a_missing_study_exits_2_writing_nothing(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.toml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "none.toml: no such study file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


SHIPPED = {"compare": 4, "losses": 5, "latent_size": 5, "sweep": 16, "denoising": 4, "dogs": 5, "table1": 12, "zoo": 4}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_study_loads_and_its_runs_build(name):
    from aelab import registry

    s = study.load(study.STUDY_DIR / f"{name}.toml")
    assert len(s.runs) == SHIPPED[name] and s.title and s.question
    assert {r.config.data for r in s.runs} == {s.runs[0].config.data}  # one dataset: runs comparable
    for r in s.runs:
        d = r.config.data
        shape = (3, d.image_size, d.image_size) if d.name == "folder" else (1, 28, 28)
        registry.build_model(r.config, shape, 10)  # sizes fit the images


def test_study_shipped_settings():
    by = lambda name: {r.name: r.config for r in study.load(study.STUDY_DIR / f"{name}.toml").runs}  # noqa: E731
    losses = by("losses")
    mse_mean = losses["mse-mean"].model
    assert mse_mean.objective.recon_reduction == "mean" and mse_mean.likelihood.name == "gaussian"
    assert losses["bce-anneal"].model.objective.kl_warmup_epochs > 0 and losses["l1-sum"].model.likelihood.name == "laplace"
    assert [c.model.latent_dim for c in by("latent_size").values()] == [1, 2, 5, 10, 20]
    dae = by("denoising")
    assert {c.model.corruption.sigma for c in dae.values()} == {0.4} and {c.model.latent_dim for c in dae.values()} == {2}
    assert dae["cnn-l2"].model.network.name == "cnn" and dae["cnn-l2"].train.weight_decay > 0 == dae["cnn"].train.weight_decay
    dogs = by("dogs")
    assert [c.model.channel.sigma for c in dogs.values()] == [0, 0.05, 0.1, 0.15, 0]
    assert [c.model.latent_dim for c in dogs.values()] == [1024] * 4 + [4096]
    # every model gets the course's 20 minutes of training steps, in the precision the hardware runs best
    assert {(c.train.precision, c.train.time_budget_min, c.train.epochs) for c in dogs.values()} == {("auto", 20, 0)}


JOBS_BASE = """
[data]
val_size = 500
train_size = 1000
[model]
latent_dim = 2
[model.network]
hidden = [32]
[model.latent]
name = "point"
[train]
epochs = 1
batch_size = 100
eval_batch_size = 1000
"""


def test_study_with_two_jobs_reports_the_runs_that_finished_and_names_the_one_that_diverged(tmp_path, capsys):
    (tmp_path / "base.toml").write_text(JOBS_BASE)
    (tmp_path / "jobs.toml").write_text("""
title = "Jobs"
config = "base.toml"
nll_k = 4
[variants.plain]
[variants.noisy]
set = ["model.corruption.name=gaussian"]
[variants.blowup]
set = ["train.lr=1e30"]
""")
    out = tmp_path / "out"
    assert main(["study", str(tmp_path / "jobs.toml"), "--jobs", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"3 runs, 2 at a time, {max(1, (os.cpu_count() or 1) // 2)} thread(s) each" in err
    assert "blowup did not finish" in err or "blowup" in err.splitlines()[-1]
    html = (out / "report.html").read_text()
    assert [r for r in ("plain", "noisy") if f"<tr><td>{r}</td>" in html] == ["plain", "noisy"]
    assert "<tr><td>blowup</td>" not in html and "blowup did not finish and is not in the table: diverged" in html
    for name in ("plain", "noisy"):
        assert (out / "runs" / name / "eval.json").is_file() and (out / "figures" / name / "samples.png").is_file()
    noisy = json.loads((out / "runs" / "noisy" / "eval.json").read_text())
    assert "psnr_denoised_db" in noisy and noisy["samples_judged"] == JUDGED  # the workers judge as the parent does


def test_study_needs_a_file_and_defaults_out_to_its_name(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["study"])
    monkeypatch.chdir(tmp_path)
    assert main(["study", "missing.toml"]) == 2
    err = capsys.readouterr().err
    assert "missing.toml: no such study file (shipped studies: compare, cvae_tradeoff, denoising, dogs, latent_size, losses, sweep" in err
    assert not (tmp_path / "runs").exists()
    # a shipped study by name, from anywhere
    assert study.load("latent_size").path == study.load("studies/latent_size.toml").path == study.STUDY_DIR / "latent_size.toml"


def test_table1_is_burdas_protocol_beside_its_published_numbers_and_a_set_makes_it_a_cpu_study(tmp_path, capsys):
    s = study.load("table1")
    runs = {r.name: r for r in s.runs}
    assert s.nll_k == 5000 and list(runs) == [f"{o}-{n}layer-k{k}" for n in (1, 2) for o in ("vae", "iwae") for k in (1, 5, 50)]
    t = runs["vae-1layer-k1"].config.train
    assert (t.batch_size, t.adam_eps, t.lr, t.lr_schedule, t.epochs) == (20, 1e-4, 1e-3, "burda", 3280)
    m = runs["iwae-1layer-k50"].config.model
    assert m.network.hidden == (200, 200) and m.latent_dim == 50 and m.network.activation == "tanh"
    assert (m.objective.name, m.objective.samples) == ("iwae", 50)
    assert runs["vae-1layer-k5"].config.model.objective.samples == 5
    two = runs["iwae-2layer-k50"].config.model  # x -> 100 -> 100 -> z1 (100) -> 50 -> 50 -> z2 (50)
    assert (two.latent.name, two.latent_dim, two.latent.top_dim, two.latent.hidden, two.network.hidden) == (
        "two_layer", 150, 50, (50, 50), (100, 100))
    published = {name: dict(r.published)["nll_is"] for name, r in runs.items()}
    assert published == {"vae-1layer-k1": 86.76, "vae-1layer-k5": 86.47, "vae-1layer-k50": 86.35,
                         "iwae-1layer-k1": 86.76, "iwae-1layer-k5": 85.54, "iwae-1layer-k50": 84.78,
                         "vae-2layer-k1": 85.33, "vae-2layer-k5": 85.01, "vae-2layer-k50": 84.78,
                         "iwae-2layer-k1": 85.33, "iwae-2layer-k5": 83.89, "iwae-2layer-k50": 82.90}
    # --set comes last, over the study's own settings, in --list's commands as in the runs
    sets = ["--set", "train.epochs=0", "--set", "train.time_budget_min=60"]
    assert main(["study", "table1", "--out", str(tmp_path / "t1"), "--list", *sets]) == 0
    commands = capsys.readouterr().out.strip().splitlines()
    assert len(commands) == 12 and all(c.endswith(f"{' '.join(sets)} --out {tmp_path / 't1'}/runs/{name} --no-eval")
                                      for c, name in zip(commands, runs))
    budgeted = study.load("table1", ["train.epochs=0", "train.time_budget_min=60"]).runs[0].config.train
    assert (budgeted.epochs, budgeted.time_budget_min, budgeted.lr_schedule) == (0, 60, "burda")


def test_published_numbers_stand_beside_the_runs_own():
    from pathlib import Path

    from aelab.reporting import report

    s = study.load("table1")
    entries = [report.Entry(r.name, r.config, {"nll_is": 87.0 + i, "epoch": 3}, Path("none"), {},
                            published=dict(r.published)) for i, r in enumerate(s.runs[:2])]
    head, rows = report.table_rows(entries)
    at = head.index("nll_is")
    assert head[at + 1] == "nll_is published"
    assert [row[at:at + 2] for row in rows] == [["87.00", "86.76"], ["88.00", "86.47"]]
    epoch = head.index("epoch")  # the paper's passes beside the run's
    assert head[epoch + 1] == "epoch published" and [row[epoch:epoch + 2] for row in rows] == [["3", "3280"]] * 2
    plain = [report.Entry("x", s.runs[0].config, {"nll_is": 87.0, "epoch": 3}, Path("none"), {})]
    assert "nll_is published" not in report.table_rows(plain)[0] and "epoch published" not in report.table_rows(plain)[0]
    # the glance table too: each number beside its paper's, and how long each trained
    from aelab.reporting import document as doc, layout

    (glance,) = [b for b in layout._glance(entries) if isinstance(b, doc.Table)]
    head = [str(h) for h in glance.head]
    assert head[2:6] == ["epoch", "epoch published", "nll_is", "nll_is published"]
    assert [row[2:6] for row in glance.rows] == [["3", "3280", "87.00", "86.76"], ["3", "3280", "88.00", "86.47"]]
    (plain_glance,) = [b for b in layout._glance(plain) if isinstance(b, doc.Table)]
    assert "epoch" not in [str(h) for h in plain_glance.head]


def test_the_zoo_trains_every_model_for_the_same_epochs_as_its_paper_does():
    s = study.load("zoo")
    runs = {r.name: r.config for r in s.runs}
    assert set(runs) == {"vae", "iwae-k5", "vampprior", "two-layer"} and s.nll_k == 5000
    assert len({c.train.epochs for c in runs.values()}) == 1 and runs["vae"].train.epochs > 0
    assert {(c.train.batch_size, c.train.adam_eps, c.train.time_budget_min, c.data.binarize, c.model.init)
            for c in runs.values()} == {(20, 1e-4, 0, "dynamic", "glorot")}
    assert runs["iwae-k5"].model.objective.name == "iwae" and runs["iwae-k5"].model.objective.samples == 5
    vamp = runs["vampprior"].model
    assert vamp.prior.name == "vamp" and vamp.prior.components == 500
    two = runs["two-layer"].model
    assert (two.latent.name, two.latent_dim, two.latent.top(two.latent_dim), two.network.hidden) == ("two_layer", 150, 50, (100, 100))
    # free bits that fall away within the study's epochs: the VampPrior's code and the top layer kept
    # alive at the start, the plain ELBO at the end (docs/experiments/zoo.md)
    for m in (vamp, two):
        assert m.objective.free_bits > 0 and 0 < m.objective.free_bits_decay_epochs <= runs["vae"].train.epochs
    assert not runs["vae"].model.objective.free_bits and runs["vae"].model.objective.name == "elbo"
    assert {r.name: (dict(r.published)["nll_is"], dict(r.published)["epoch"]) for r in s.runs} == {
        "vae": (86.76, 3280), "iwae-k5": (85.54, 3280), "vampprior": (85.57, 2000), "two-layer": (85.33, 3280)}
