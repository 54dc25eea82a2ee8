"""Study files: variants crossed with a grid, readable run names, every bad key refused."""

import pytest

from aelab import job, study
from aelab.cli import main
from aelab.errors import AelabError

BASE = """
[data]
val_size = 500
train_size = 2000
[model]
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
    assert [r.config.model.kind for r in s.runs] == ["ae", "vae", "cvae", "vae"]
    assert {r.config.data for r in s.runs} == {s.runs[0].config.data}  # the same data for every run
    assert s.runs[0].config.data.val_size == 5000 and s.runs[3].config.model.latent_dim == 2
    assert s.nll_k == 100 and s.title and s.question


def test_variants_cross_the_grid_with_readable_names(tmp_path):
    s = study.load(_write(tmp_path, """
title = "t"
config = "base.toml"
set = ["train.epochs=2"]
[variants.ae]
set = ["model.kind=ae"]
[variants.vae]
[grid]
"model.hidden" = [[64], [128, 64]]
"train.lr" = [1e-3, 1e-2]
"""))
    names = [r.name for r in s.runs]
    assert names[:4] == ["ae-hidden=64-lr=0.001", "ae-hidden=64-lr=0.01", "ae-hidden=128x64-lr=0.001",
                         "ae-hidden=128x64-lr=0.01"] and len(names) == 8
    run = s.runs[2]
    assert run.config.model.kind == "ae" and run.config.model.hidden == (128, 64) and run.config.train.lr == 1e-3
    assert run.config.train.epochs == 2 and run.config.data.train_size == 2000
    assert run.varied == {"model.kind": "ae", "model.hidden": [128, 64], "train.lr": 1e-3}


def test_a_grid_alone_and_a_variant_with_its_own_config(tmp_path):
    (tmp_path / "other.toml").write_text('[model]\nkind = "ae"\nlatent_dim = 3\n')
    s = study.load(_write(tmp_path, """
config = "base.toml"
[variants.mine]
config = "other.toml"
[variants.packaged]
config = "dae_mnist.toml"
"""))
    assert [(r.name, r.config.model.latent_dim) for r in s.runs] == [("mine", 3), ("packaged", 2)]
    assert s.runs[1].config.model.input_noise == 0.4 and s.title == "s"
    g = study.load(_write(tmp_path, 'config = "base.toml"\n[grid]\n"model.latent_dim" = [1, 2]\n'))
    assert [r.name for r in g.runs] == ["latent_dim=1", "latent_dim=2"]


@pytest.mark.parametrize("text, words", [
    ('config = "base.toml"\nepochs = 3\n', ["unknown key 'epochs'", "valid keys"]),
    ('config = "base.toml"\n[grid]\n"model.size" = [1]\n', ["grid", "unknown key 'model.size'"]),
    ('config = "base.toml"\n[grid]\n"train.lr" = []\n', ["non-empty lists"]),
    ('config = "nowhere.toml"\n', ["config 'nowhere.toml' not found"]),
    ('title = "no config"\n', ["no config"]),
    ('config = "base.toml"\nset = "model.kind=ae"\n', ["set must be a list"]),
    ('config = "base.toml"\n[variants.a]\nsets = []\n', ["variants.a", "unknown key 'sets'"]),
    ('config = "base.toml"\n[variants.a]\nset = ["model.kind=gan"]\n', ["model.kind", "gan"]),
    ('config = "base.toml"\n[grid]\n"train.lr" = [0.1, 0.1]\n', ["share the name"]),
    ('config = "base.toml"\nnll_k = 0\n', ["nll_k"]),
    ('config = "base.toml"\n[grid\n', ["not valid TOML"]),
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
