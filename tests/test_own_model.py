"""A user's own part, end to end from a folder outside the repository: a prior of the user's
file, named by a path relative to the config; train, kill and resume to the bits of an
uninterrupted run, eval, report, one request to the explorer, a two-run study varying its
setting in two processes, torchrun with two gloo processes; what the run records of the code;
bad input."""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from aelab import config
from aelab.cli import main
from aelab.errors import AelabError
from aelab.explore.session import Explorer
from aelab.studies import study
from aelab.runs.rundir import RunDir
from conftest import JUDGING
from test_cluster import _torchrun
from test_explore import Served
from test_resume import AELAB, _same, _stopped_until_done, _untimed, _weights

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "mixture_prior.py")
CONFIG = """
[data]
binarize = "dynamic"
val_size = 256
train_size = 1024
[model]
latent_dim = 4
[model.network]
hidden = [64]
[model.prior]
name = "parts/myprior.py:MixturePrior"
components = 3
[train]
epochs = 2
batch_size = 64
log_every = 4
checkpoint_every_min = 1e-9
threads = 1
device = "cpu"
precision = "float32"
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "AELAB_JUDGING": JUDGING}


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A user's folder: lab/parts/myprior.py, lab/my.toml naming it; the commands run from
    elsewhere (tmp/elsewhere), so the path is found from the config's folder."""
    lab = tmp_path / "lab"
    (lab / "parts").mkdir(parents=True)
    shutil.copy(EXAMPLE, lab / "parts" / "myprior.py")
    (lab / "my.toml").write_text(CONFIG)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return lab


def test_a_users_prior_trains_resumes_evaluates_reports_explores_and_records_its_code(lab, tmp_path, capsys,
                                                                                      monkeypatch):
    from aelab.reporting import figures

    monkeypatch.setattr(figures, "SCATTER_POINTS", 50)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = str(lab / "my.toml")
    whole = tmp_path / "whole"
    assert main(["train", cfg, "--quiet", "--no-eval", "--out", str(whole)]) == 0
    # killed at a random moment once it has a checkpoint, then resumed: the same bits
    stopped = tmp_path / "stopped"
    first = AELAB + ["train", cfg, "--quiet", "--no-eval", "--out", str(stopped)]
    _stopped_until_done(first, stopped, [signal.SIGKILL], random.Random(3), 0.1, early=False)
    assert _same(_weights(whole), _weights(stopped)) and _untimed(whole) == _untimed(stopped)

    source = lab / "parts" / "myprior.py"
    meta = json.loads((whole / "meta.json").read_text())
    [part] = meta["user_parts"]
    assert part["name"] == f"{source}:MixturePrior" and part["slot"] == "prior" and part["class"] == "MixturePrior"
    assert part["files"] == [{"path": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}]
    assert (whole / "code" / "myprior.py").read_bytes() == source.read_bytes()
    assert f'name = "{source}:MixturePrior"' in (whole / "config.toml").read_text()  # found from anywhere

    # every metric that applies; the command says which file it imports
    assert main(["eval", str(whole), "--k", "20", "--json"]) == 0
    out, err = capsys.readouterr()
    record = json.loads(out)
    assert record["nll_is"] <= record["neg_elbo"] + 1 and record["active_units"] >= 0 and "samples_judged" in record
    assert f"aelab: model.prior: importing MixturePrior from {source}\n" in err and "warning" not in err

    # the report: the part's own settings line and theory
    assert main(["report", str(whole), "--out", str(tmp_path / "report")]) == 0
    html = (tmp_path / "report" / "report.html").read_text()
    assert "prior a learned mixture of 3 Gaussians" in html and "A learned mixture prior" in html

    # one request to the explorer, decoding a code drawn from the user's prior
    served = Served(Explorer(RunDir.open(whole)))
    try:
        status, answer = served.ask("POST", "/api/decode", {"z": [0.5, -0.5, 0.0, 1.0]})
        assert status == 200 and "image" in answer, answer
    finally:
        served.close()

    # the file changes: a later command imports the changed file, never the run's copy, and
    # warns in one line (a command is a process of its own: the file is imported afresh)
    source.write_text(source.read_text().replace("a learned mixture of", "a mixture of"))
    _as_a_new_process()
    assert main(["sample", str(whole), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and f"{source} has changed since the run was made" in warning[0], warning
    assert "the run's copy is in its code/ folder" in warning[0]
    assert "prior a mixture of 3 Gaussians" in RunDir.open(whole).config().model.describe()  # the changed file's
    # gone: one line naming it (the copy in the run directory is a record, not a fallback)
    source.unlink()
    _as_a_new_process()
    assert main(["eval", str(whole)]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(f"{source}: no such file") and err.count("\n") == 1, err


def _as_a_new_process():
    """Forget the user's modules, as a new command's process starts without them."""
    for name in [n for n in sys.modules if n.startswith("aelab_user.")]:
        del sys.modules[name]


def _study(lab, sets=()):
    (lab / "study.toml").write_text(textwrap.dedent(f"""
        title = "Mixture sizes"
        config = "my.toml"
        set = ["train.epochs=1", "train.checkpoint_every_min=0", "data.train_size=512"{"".join(f', "{s}"' for s in sets)}]
        nll_k = 4
        [grid]
        "model.prior.components" = [1, 3]
        """))
    return lab / "study.toml"


def _studied(out):
    html = (out / "report.html").read_text()
    for k in (1, 3):
        assert f"<tr><td>components={k}</td>" in html
        assert config.load(out / "runs" / f"components={k}" / "config.toml").model.prior.components == k


def test_a_study_varies_a_users_setting(lab, tmp_path, monkeypatch):
    from aelab.reporting import figures

    monkeypatch.setattr(figures, "SCATTER_POINTS", 50)
    monkeypatch.setenv("AELAB_JUDGING", JUDGING.replace("samples = 1000", "samples = 200"))
    out = tmp_path / "study"
    first = study.load(_study(lab)).runs[0]
    killed = RunDir.create(out / "runs" / first.name, first.config)  # as if killed before its first checkpoint
    assert (killed.path / "code" / "myprior.py").is_file()
    assert main(["study", str(_study(lab)), "--out", str(out)]) == 0
    _studied(out)


@pytest.mark.slow
def test_torchrun_trains_a_users_part_in_two_gloo_processes(lab, tmp_path):
    """Slow (processes start and meet); the part crosses into them as config text, which the
    pickling test below and torchrun's own test (test_cluster.py) cover in the default suite."""
    proc = _torchrun("train", str(lab / "my.toml"), "--quiet", "--out", str(tmp_path / "two"),
                     "--set", "train.epochs=1", "--set", "train.checkpoint_every_min=0", "--set", "data.train_size=512")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes (gloo)" in proc.stderr
    assert RunDir(tmp_path / "two").training()[0]["processes"] == 2


@pytest.mark.slow
def test_a_study_of_a_users_part_in_two_worker_processes(lab, tmp_path):
    out = tmp_path / "study"
    assert main(["study", str(_study(lab)), "--jobs", "2", "--out", str(out)]) == 0
    _studied(out)


BAD = {
    "missing module": ('name = "no_such_pkg_zq.priors:Mixture"', "no_such_pkg_zq.priors: no such module"),
    "missing file": ('name = "nowhere.py:Mixture"', "nowhere.py: no such file"),
    "raises on import": ('name = "parts/boom.py:Mixture"', "boom.py: raised on import: RuntimeError: no GPU here"),
    "syntax error": ('name = "parts/broken.py:Mixture"', "broken.py: raised on import: SyntaxError"),
    "missing class": ('name = "parts/myprior.py:Nope"', "myprior.py: has no class 'Nope'"),
    "not a settings class": ('name = "parts/myprior.py:Mixture"',
                             "myprior.py:Mixture: is not a part settings class"),
    "another slot": ('name = "parts/net.py:Networks"', "net.py:Networks: is for model.network, not model.prior"),
    "not its slot's base": ('name = "parts/loose.py:LoosePrior"',
                            "loose.py:LoosePrior: does not subclass aelab.parts.PriorSettings, the protocol of model.prior"),
    "builds no Prior": ('name = "parts/loose.py:ModulePrior"',
                        "loose.py:ModulePrior.build gave a Linear, not an aelab.parts.Prior"),
    "unknown setting": ('name = "parts/myprior.py:MixturePrior"\ncomponent = 3',
                        "unknown key 'model.prior.component'; valid keys: model.prior.name, model.prior.components"),
    "wrong type": ('name = "parts/myprior.py:MixturePrior"\ncomponents = "ten"', "model.prior.components must be an integer"),
    "out of range": ('name = "parts/myprior.py:MixturePrior"\ncomponents = 0', "model.prior.components must be at least 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written(case, lab, tmp_path, capsys):
    (lab / "parts" / "boom.py").write_text("raise RuntimeError('no GPU here')\n")
    (lab / "parts" / "broken.py").write_text("def f(:\n")
    (lab / "parts" / "loose.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from torch import nn
        from aelab.parts import PartSettings, PriorSettings
        @dataclass(frozen=True)
        class LoosePrior(PartSettings):  # the right slot, but not the slot's base
            slot = "prior"
            def build(self, num_classes, latent_dim):
                return nn.Linear(1, 1)
        @dataclass(frozen=True)
        class ModulePrior(PriorSettings):  # the base, but it builds no Prior
            def build(self, num_classes, latent_dim):
                return nn.Linear(1, 1)
        '''))
    (lab / "parts" / "net.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        from aelab.parts import NetworkSettings
        @dataclass(frozen=True)
        class Networks(NetworkSettings):
            def build(self, image_shape, out_dim, latent_dim, cond_dim):
                raise NotImplementedError
        '''))
    table, said = BAD[case]
    (lab / "bad.toml").write_text(CONFIG.replace('name = "parts/myprior.py:MixturePrior"\ncomponents = 3', table))
    out = tmp_path / "run"
    assert main(["train", str(lab / "bad.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    # the file with the problem: the config, or the part's own file where what it builds is wrong
    assert said in err and err.count("\n") == 1 and (str(lab / "bad.toml") in err or str(lab / "parts") in err), err
    assert not out.exists()


def test_a_network_that_gives_the_wrong_shape_is_refused_before_anything_is_written(lab, tmp_path, capsys):
    (lab / "parts" / "net.py").write_text(textwrap.dedent('''
        import math
        from dataclasses import dataclass
        from torch import nn
        from aelab.parts import NetworkSettings
        from aelab.parts.adapters import FlatDecoder, FlatEncoder

        @dataclass(frozen=True)
        class Networks(NetworkSettings):
            def build(self, image_shape, out_dim, latent_dim, cond_dim):
                x = math.prod(image_shape)
                return FlatEncoder(nn.Linear(x, latent_dim)), FlatDecoder(nn.Linear(latent_dim, x), image_shape)
        '''))
    (lab / "net.toml").write_text(CONFIG.replace('name = "parts/myprior.py:MixturePrior"\ncomponents = 3',
                                                 'name = "standard"').replace("hidden = [64]", 'name = "parts/net.py:Networks"'))
    out = tmp_path / "run"
    assert main(["train", str(lab / "net.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model.network: Networks's encoder gives (2, 4) for input (2, 1, 28, 28), not (2, 8)" in err, err
    assert not out.exists()


def test_a_users_part_crosses_into_another_process_by_its_reference(lab):
    import pickle

    cfg = config.load(lab / "my.toml")
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg and type(again.model.prior) is type(cfg.model.prior)
    code = ("import pickle, sys; cfg = pickle.loads(sys.stdin.buffer.read()); "
            "print(type(cfg.model.prior).__name__, cfg.model.prior.components)")
    proc = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(cfg), capture_output=True, env=ENV)
    assert proc.stdout.decode().strip() == "MixturePrior 3", proc.stderr.decode()[-2000:]


def test_a_users_part_without_theory_gets_a_line_of_its_own_in_the_report():
    from aelab.reporting import theory

    cfg = config.load(os.path.join(os.path.dirname(EXAMPLE), "adapter", "vae.toml"))
    said = dict(theory.sections([cfg]))
    assert "Variational autoencoder (VAE)" in said  # CourseLatent's own theory
    [line] = said["CourseNetworks, a network of your own"]
    assert "adapter.py) is a network part written outside aelab" in line and "theory(model)" in line


def test_set_reaches_a_users_settings_with_the_same_checks(lab):
    cfg = config.load(lab / "my.toml", ["model.prior.components=5"])
    assert cfg.model.prior.components == 5 and cfg.model.describe().endswith("prior a learned mixture of 5 Gaussians, bernoulli")
    with pytest.raises(AelabError, match=r"^--set: model.prior.components must be at least 1, got 0$"):
        config.load(lab / "my.toml", ["model.prior.components=0"])
    with pytest.raises(AelabError, match=r"^--set: unknown key 'model.prior.k'; valid keys: model.prior.name, model.prior.components$"):
        config.load(lab / "my.toml", ["model.prior.k=3"])
    # a part named on the command line: a path from the working folder
    shutil.copy(lab / "parts" / "myprior.py", "here.py")
    named = config.load(lab / "my.toml", ["model.prior.name=here.py:MixturePrior"])
    assert named.model.prior.name == f"{os.path.abspath('here.py')}:MixturePrior" and named.model.prior.components == 10


def test_an_objective_that_reports_its_loss_alone_trains_and_evaluates(lab, tmp_path, capsys):
    """The objective's protocol asks for "loss" only; recon, kl, neg_elbo and mse are reported where given."""
    (lab / "parts" / "bare.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass
        import torch.nn.functional as F
        from aelab.parts import Objective, ObjectiveSettings

        class Bare(Objective):
            def schedule(self, progress):
                return {}
            def __call__(self, model, batch, progress):
                q = model.encode(batch.x, batch.y)
                out = model.decode(q.rsample(), batch.y)
                recon = F.binary_cross_entropy_with_logits(out, batch.x, reduction="none").flatten(1).sum(1)
                return {"loss": (recon + q.kl(model.prior(batch.y))).mean()}

        @dataclass(frozen=True)
        class BareObjective(ObjectiveSettings):
            def build(self, image_shape):
                return Bare()
        '''))
    (lab / "bare.toml").write_text(CONFIG.replace('name = "parts/myprior.py:MixturePrior"\ncomponents = 3', 'name = "standard"')
                                   + '[model.objective]\nname = "parts/bare.py:BareObjective"\n')
    cfg = config.load(lab / "bare.toml", ["train.epochs=1", "train.checkpoint_every_min=0"])
    assert cfg.model.objective.title == "BareObjective"
    assert main(["train", str(lab / "bare.toml"), "--quiet", "--out", str(tmp_path / "run"),
                 "--set", "train.epochs=1", "--set", "train.checkpoint_every_min=0"]) == 0
    out, err = capsys.readouterr()
    assert "epoch 1/1  train " in err and json.loads(out)["loss"] > 0


def test_a_users_part_shows_by_its_class_and_other_colons_stay():
    from aelab.settings import value_text

    assert value_text("/home/me/lab/mine.py:MyPrior") == "MyPrior" and value_text("mylab.priors:Vamp") == "Vamp"
    assert value_text("C:\\data\\digits") == "C:\\data\\digits" and value_text("cuda:0") == "cuda:0"


def test_a_users_prior_is_reproducible_from_its_seed(lab, tmp_path):
    """Trained twice: the same weights. Sampled twice with one --seed (in one process, where the
    global RNG moves on between calls): the same images; another seed, others. The prior's draw
    gets the call's seeded generator (parts/slots.PriorDensity.draw) and needs nothing else."""
    import numpy as np

    from aelab.runs.rundir import RunDir

    cfg, sets = str(lab / "my.toml"), ["--set", "train.epochs=1"]
    runs = [tmp_path / "one", tmp_path / "two"]
    for run in runs:
        assert main(["train", cfg, "--quiet", "--no-eval", "--out", str(run), *sets]) == 0
    assert _same(_weights(runs[0]), _weights(runs[1]))
    drawn = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        torch.randn(7)  # the global RNG moves between calls, as it does in a session
        assert main(["sample", str(runs[0]), "--n", "16", "--seed", str(seed), "--out", str(tmp_path / f"{name}.npy")]) == 0
        drawn[name] = np.load(tmp_path / f"{name}.npy")
    assert np.array_equal(drawn["a"], drawn["b"]) and not np.array_equal(drawn["a"], drawn["c"])
    model, _, _ = RunDir.open(runs[0]).model("best")
    first = model.sample(32, generator=torch.Generator().manual_seed(5))
    torch.randn(7)
    assert torch.equal(first, model.sample(32, generator=torch.Generator().manual_seed(5)))
