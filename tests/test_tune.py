"""`aelab tune`: the [search] table checked, a tiny search whose trials are run directories and
whose report names the best, two workers on one journal sharing the trial count, a real
PostgreSQL server as the storage, pruning, and a stopped search going on with the same command."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import torch

from aelab import cli
from aelab.errors import AelabError
from aelab.studies import optuna_search, pipeline, study, tune
from aelab.studies.folder import StudyDir
from aelab.training import train
from aelab.runs.rundir import RunDir

optuna = pytest.importorskip("optuna")

BASE = ('config = "vae_mnist.toml"\n'
        'set = ["data.train_size=512", "data.val_size=256", "train.epochs=2", "model.network.hidden=[32]", '
        '"model.latent_dim=2", "train.threads=1"]\nnll_k = 2\n')
SPACE = ('[search.space]\n"train.lr" = { low = 1e-3, high = 1e-2, log = true }\n'
         '"model.network.hidden" = { choices = [[16], [32]] }\n')


def _study(tmp_path, search: str, space: str = SPACE, name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'title = "tiny search"\n{BASE}\n[search]\n{search}\n{space}')
    return path


def _trials(out: Path, path: Path, url: str | None = None):
    return tune.open_search(study.load(path), out, url).get_trials()


@pytest.mark.parametrize("search, space, error", [
    ('trials = 3\nobjectives = { neg_elbo = "lowest" }', SPACE, 'must be "minimize" or "maximize"'),
    ('objectives = { elbo = "minimize" }', SPACE, "unknown metric 'elbo'"),
    ('objectives = { neg_elbo = "minimize", cond_acc = "maximize" }\npruner = "median"', SPACE,
     "prunes searches of one objective only"),
    ('objectives = { neg_elbo = "minimize" }\ntrails = 3', SPACE, "unknown key 'trails'"),
    ('objectives = { neg_elbo = "minimize" }', '[search.space]\n"train.lr" = { low = 1e-2, high = 1e-3 }',
     "low must be below high"),
    ('objectives = { neg_elbo = "minimize" }', '[search.space]\n"train.lr" = { low = 0.0, high = 1e-3, log = true }',
     "a log scale needs low > 0"),
    ('objectives = { neg_elbo = "minimize" }', '[search.space]\n"train.lrr" = { low = 1e-4, high = 1e-3 }',
     "unknown key 'train.lrr'"),
    ('objectives = { neg_elbo = "minimize" }', '[search.space]\n"model.prior.name" = { choices = ["vamp", "nope"] }',
     "search.space.model.prior.name = \"nope\""),
])
def test_a_bad_search_is_refused_naming_the_file_and_the_key(tmp_path, search, space, error):
    path = _study(tmp_path, search, space)
    with pytest.raises(AelabError, match=error) as e:
        study.load(path)
    assert str(path) in str(e.value)


def test_a_search_is_not_a_study_and_a_study_is_not_a_search(tmp_path, capsys):
    path = _study(tmp_path, 'objectives = { neg_elbo = "minimize" }')
    assert cli.main(["study", str(path), "--out", str(tmp_path / "s")]) == 2
    assert "run it with aelab tune" in capsys.readouterr().err
    assert cli.main(["tune", "compare", "--out", str(tmp_path / "t")]) == 2
    assert "has no [search] table" in capsys.readouterr().err
    varied = tmp_path / "varied.toml"
    varied.write_text(_study(tmp_path, 'objectives = { neg_elbo = "minimize" }').read_text() + "[variants.a]\n")
    with pytest.raises(AelabError, match="takes no variants or grid"):
        study.load(varied)


def test_a_tiny_search_trains_evaluates_and_reports_its_best(tmp_path, capsys):
    path = _study(tmp_path, 'trials = 3\nobjectives = { neg_elbo = "minimize" }\npruner = "none"')
    out = tmp_path / "out"
    assert cli.main(["tune", str(path), "--out", str(out)]) == 0
    trials = _trials(out, path)
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:  # each an ordinary, complete, evaluated run of the trial's settings
        run = RunDir.open(out / t.user_attrs["run"])
        assert run.is_done() and run.config().train.lr == pytest.approx(t.params["train.lr"])
        assert list(run.config().model.network.hidden) == json.loads(t.params["model.network.hidden"])
        chosen_on = json.loads(run.evaluation_path("val").read_text())  # the validation split's, not the test's
        assert chosen_on["split"] == "val" and chosen_on["n_images"] == 256
        assert chosen_on["neg_elbo"] == pytest.approx(t.values[0], abs=1e-6)
    assert trials[0].user_attrs["base"] and trials[0].params == {"train.lr": 1e-3, "model.network.hidden": "[32]"}
    best = min(trials, key=lambda t: t.values[0])
    said = capsys.readouterr().out
    assert f"best: trial-{best.number:04d}" in said
    html = (out / "report.html").read_text()
    assert "3 trial(s) complete, 0 pruned, 0 failed, of 3." in html and f"trial-{best.number:04d}" in html
    better = [t for t in trials[1:] if t.values[0] < trials[0].values[0]]
    assert f"trial-0000 is the base config; {len(better)} trial(s) beat it on every objective" in html
    assert (out / "figures" / "search" / "history_neg_elbo.png").is_file()
    assert (out / "figures" / "search" / "importance_neg_elbo.png").is_file()
    assert len((out / "trials.tsv").read_text().splitlines()) == 4
    assert (out / "trials.tsv").read_text().split("\t")[2] == "val_neg_elbo"
    assert "Trials are chosen on the validation split" in html
    test = RunDir.open(out / best.user_attrs["run"]).evaluation()  # measured for the report, once chosen
    assert test["split"] == "test" and f"trial-{best.number:04d}: validation neg_elbo {best.values[0]:.4g}; " \
        f"test neg_elbo {test['neg_elbo']:.4g}." in html
    _, again = tune.run_search(path, out, report=False)  # done: the same search runs no trial more
    assert again["complete"] == 3 and len(_trials(out, path)) == 3


def test_two_workers_on_one_journal_share_the_trial_count(tmp_path):
    path = _study(tmp_path, 'trials = 4\nobjectives = { neg_elbo = "minimize" }\npruner = "none"')
    out = tmp_path / "out"
    _, summary = tune.run_search(path, out, pipeline.Running(jobs=2), report=False)
    trials = _trials(out, path)
    assert summary["complete"] == 4 and sorted(t.number for t in trials) == [0, 1, 2, 3]
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert runs == [f"trial-{n:04d}" for n in range(4)]
    for name in runs:  # trained once each: two epochs, not two trainings' worth
        assert [r["epoch"] for r in RunDir.open(out / "runs" / name).metrics()] == [1, 2]
    assert len({t.params["train.lr"] for t in trials}) == 4  # each trial its own draw, whichever worker asked


def test_pruned_trials_keep_their_runs_and_a_search_with_none_complete_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna_search, "pruner", lambda search: optuna.pruners.ThresholdPruner(upper=0.0))  # prunes every trial
    path = _study(tmp_path, 'trials = 2\nobjectives = { neg_elbo = "minimize" }')
    out = tmp_path / "out"
    with pytest.raises(AelabError, match=r"no trial of the search is complete \(2 pruned, 0 failed\)"):
        tune.run_search(path, out)
    for t in _trials(out, path):
        assert t.state.name == "PRUNED" and list(t.intermediate_values) == [1]
        run = RunDir.open(out / t.user_attrs["run"])
        assert not run.is_done() and [r["epoch"] for r in run.metrics()] == [1]  # stopped after its first epoch


def test_a_worker_starts_no_trial_after_the_searchs_minutes(tmp_path, monkeypatch):
    ticks = iter(range(0, 10_000, 40))  # 40 s a reading: the start, then one trial asked at 40 s, none at 80
    monkeypatch.setattr(tune, "clock", lambda: next(ticks))
    path = _study(tmp_path, 'trials = 5\nminutes = 1\nobjectives = { neg_elbo = "minimize" }\npruner = "none"')
    _, summary = tune.run_search(path, tmp_path / "out", report=False)
    assert summary["complete"] == 1 and len(_trials(tmp_path / "out", path)) == 1


def test_a_stopped_search_goes_on_and_resumes_its_stopped_trial(tmp_path):
    path = _study(tmp_path, 'trials = 2\nobjectives = { neg_elbo = "minimize" }\npruner = "none"')
    out = tmp_path / "out"
    s = study.load(path)
    (out / "runs").mkdir(parents=True)
    found = tune.open_search(s, out, None)
    trial = found.ask()  # what a worker killed in its trial's second epoch leaves: a RUNNING trial ...
    for p in s.search.space:
        p.suggest(trial)
    trial.set_user_attr("run", "runs/trial-0000")
    cfg = tune.trial_config(s.search, s.runs[0].config, trial.params)
    run = RunDir.create(tune.run_path(out, 0), cfg)
    from aelab import registry
    train.fit(cfg, run, registry.build_data(cfg), until_epoch=1)  # ... and a run with one epoch's checkpoint
    first = run.metrics()[0]
    tune.run_search(path, out, report=False)
    trials = _trials(out, path)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    metrics = RunDir.open(tune.run_path(out, 0)).metrics()
    assert [r["epoch"] for r in metrics] == [1, 2] and metrics[0] == first  # resumed, not started again


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A real PostgreSQL server on the loopback address, started from Debian's package."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins or not (bins[-1] / "initdb").is_file():
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg")
    folder = Path(tempfile.mkdtemp(prefix="aelab-pg-"))  # not under pytest's folders: those are the user's alone
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own user
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True)  # noqa: E731
    run(bins[-1] / "initdb", "-D", data, "-U", "aelab", "--auth=trust")
    run(bins[-1] / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "-o",
        f"-h 127.0.0.1 -p {port} -k {folder}", "start")
    try:
        run(bins[-1] / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "aelab", "tune")
        yield f"postgresql://aelab@127.0.0.1:{port}/tune"
    finally:
        run(bins[-1] / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_a_postgresql_server_holds_a_two_worker_search(tmp_path, postgres):
    path = _study(tmp_path, 'trials = 3\nobjectives = { neg_elbo = "minimize" }\npruner = "none"')
    out = tmp_path / "out"
    started = time.monotonic()
    _, summary = tune.run_search(path, out, pipeline.Running(jobs=2), url=postgres, report=False)
    assert summary["complete"] == 3 and time.monotonic() - started < 120
    assert sorted(t.number for t in _trials(out, path, postgres)) == [0, 1, 2]
    assert not StudyDir(out).journal.exists()  # the records are in the database, not in a journal file
    with pytest.raises(AelabError, match=r"--storage postgresql://aelab@127.0.0.1:1/none: "):
        tune.open_search(study.load(path), out, "postgresql://aelab@127.0.0.1:1/none")


class _Sealed(torch.Tensor):
    """A tensor that raises on every use: the test split, sealed while trials are chosen."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func.__name__ in ("__get__", "__len__", "size", "to"):  # its shape, its device, moved whole: not read
            return super().__torch_function__(func, types, args, kwargs or {})
        raise AssertionError(f"the test split was read while trials were chosen ({func.__name__})")


def test_trials_are_chosen_without_reading_the_test_split(tmp_path, monkeypatch):
    """The test split's images and the test features of the judge are sealed while a search runs
    (report=False: the report, which measures the chosen trials on the test split, is not made):
    every trial completes, so no trial's training or measuring touched them."""
    from aelab.data.splits import ImageData, Split
    from aelab.evaluation import classifier

    real = ImageData.from_arrays.__func__

    def sealed(cls, *args, **kwargs):
        data = real(cls, *args, **kwargs)
        return dataclasses.replace(data, test=Split(data.test.images.as_subclass(_Sealed), data.test.labels.as_subclass(_Sealed)))

    monkeypatch.setattr(ImageData, "from_arrays", classmethod(sealed))
    monkeypatch.setattr(classifier, "test_features", lambda *a, **k: pytest.fail("the test images' features were read"))
    path = _study(tmp_path, 'trials = 2\nobjectives = { neg_elbo = "minimize", cond_acc = "maximize" }\npruner = "none"')
    path.write_text(path.read_text().replace('"train.threads=1"]', '"train.threads=1", "model.condition.name=label"]'))
    _, summary = tune.run_search(path, tmp_path / "out", report=False)
    assert summary == {"complete": 2, "pruned": 0, "failed": 0}, summary


def test_a_search_without_a_validation_split_is_refused(tmp_path):
    path = _study(tmp_path, 'trials = 2\nobjectives = { neg_elbo = "minimize" }')
    path.write_text(path.read_text().replace('"data.val_size=256"', '"data.val_size=0"'))
    with pytest.raises(AelabError, match=r"data.val_size = 0: aelab tune chooses its trials on the validation split"):
        tune.run_search(path, tmp_path / "out", report=False)
