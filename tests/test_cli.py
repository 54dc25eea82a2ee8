"""The command line: what users run, and every bad input failing in one line with exit 2."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from aelab import shipped
from aelab.cli import main
from aelab.data import idx
from aelab.data import sources as datasets
from aelab.evaluation.evaluate import evaluate_run
from aelab.reporting import report
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import JUDGED, KIND_SETS

TINY = ["--set", "data.val_size=256", "--set", "data.train_size=512", "--set", "model.network.hidden=[32]",
        "--set", "model.latent_dim=4", "--set", "train.epochs=1", "--quiet"]


def _fails(capsys, argv, *words):
    """Runs the CLI, expects exit 2 and one stderr line containing `words`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("aelab: error: "), err
    assert "Traceback" not in err and all(w in err for w in words), err
    return err


def _tree(path):
    """Every file under `path` with its content hash: to prove nothing was touched."""
    return {str(p): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist):
    """A tiny trained VAE and CVAE, shared by the tests that read runs."""
    root = tmp_path_factory.mktemp("runs")
    for kind in ("ae", "vae", "cvae"):
        assert main(["train", "configs/vae_mnist.toml", *[a for s in KIND_SETS[kind] for a in ("--set", s)], *TINY,
                     "--out", str(root / kind)]) == 0
    return root


def test_train_prints_test_metrics_with_units(runs):
    record = json.loads((runs / "vae" / "eval.json").read_text())
    assert record["split"] == "test" and record["n_images"] == 10000 and record["binarize"] == "none"
    assert {"loss", "recon_nats", "kl", "neg_elbo", "mse", "psnr_db", "ssim"} <= set(record)
    assert record["neg_elbo"] == pytest.approx(record["recon_nats"] + record["kl"], rel=1e-5)
    assert "nats per image" in record["units"]


COMMON = {"loss", "recon_nats", "mse", "psnr_db", "ssim", "probe_acc", "fd_classifier", "samples_judged",
          "classifier_test_acc"}
KEYS = {
    "ae": COMMON | {"sample_class_entropy"},
    "vae": COMMON | {"neg_elbo", "kl", "nll_is", "nll_k", "active_units", "sample_class_entropy"},
    "cvae": COMMON | {"neg_elbo", "kl", "nll_is", "nll_k", "active_units", "cond_acc", "cond_acc_per_label"},
}


@pytest.mark.parametrize("kind", list(KEYS))
def test_eval_prints_every_metric_that_applies(runs, capsys, kind):
    assert main(["eval", str(runs / kind), "--k", "20", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    metric_keys = set(record) - {"run", "kind", "dataset", "binarize", "split", "n_images", "checkpoint",
                                 "epoch", "units", "seconds", "checkpoint_sha256", "deep", "eval_precision",
                                 "eval_batch_size"}
    assert metric_keys == KEYS[kind]
    assert json.loads((runs / kind / "eval.json").read_text()) == record
    assert record["eval_precision"] in ("float32", "bfloat16") and record["eval_batch_size"] == 1000  # digits
    if "nll_is" in record:
        assert record["nll_k"] == 20 and record["nll_is"] < record["neg_elbo"]
        assert 0 <= record["active_units"] <= 4
    assert 3 < record["psnr_db"] < 40 and -1 < record["ssim"] < 1 and 0.1 < record["probe_acc"] <= 1  # 8 steps of training
    text = report.metrics_text(record)  # what `aelab eval` prints without --json
    assert "reconstruction PSNR" in text and "dB" in text and "sum over pixels, mean over images" in text
    assert record["samples_judged"] == JUDGED and f"classifier features (N={JUDGED})" in text


def test_eval_text_keeps_its_values_in_one_column_past_a_long_label():
    record = {"run": "r", "kind": "vae", "dataset": "mnist", "binarize": "dynamic", "split": "test", "n_images": 10,
              "checkpoint": "best.pt", "epoch": 3, "neg_elbo": 103.25, "active_units": 9, "active_units_z1": 9,
              "active_units_z2": 0, "fd_classifier": 115.5, "samples_judged": 10000}
    rows = report.metrics_text(record).splitlines()[1:-1]
    assert len(rows) == 5 and any("second stochastic layer" in r for r in rows)
    ends = {r.rstrip().rsplit("  ", 1)[0].rstrip() for r in rows}  # each row up to its value's last digit
    assert len({len(e) for e in ends}) == 1, rows


def test_sample_png_and_npy(runs, tmp_path, capsys):
    assert main(["sample", str(runs / "vae"), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    img = Image.open(tmp_path / "s.png")
    assert img.size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))  # 4x4 grid of 28 px, 2 px gaps, x2
    assert main(["sample", str(runs / "cvae"), "--n", "5", "--label", "3", "--out", str(tmp_path / "s.npy")]) == 0
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (5, 28, 28) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1


def test_bad_sample_requests(runs, tmp_path, capsys):
    _fails(capsys, ["sample", str(runs / "vae"), "--label", "3", "--out", str(tmp_path / "a.png")],
           "--label", "not conditioned on labels")
    _fails(capsys, ["sample", str(runs / "cvae"), "--label", "10", "--out", str(tmp_path / "a.png")],
           "--label: 10 is out of range 0-9")
    _fails(capsys, ["sample", str(runs / "vae"), "--out", str(tmp_path / "a.jpg")], "a.jpg", "use .png or .npy")
    (tmp_path / "keep.png").write_bytes(b"mine")
    _fails(capsys, ["sample", str(runs / "vae"), "--out", str(tmp_path / "keep.png")], "keep.png: already exists")
    assert (tmp_path / "keep.png").read_bytes() == b"mine"


@pytest.mark.parametrize("sets, words", [
    (["model.latent_channels=4"], "model.latent_channels has moved; use model.network.latent_channels"),
    (["model.network.name=cnn", "model.network.latent_channels=4"], "set model.latent_dim = 196"),
    (["model.network.name=cnn", "model.network.hidden=[4, 4, 4, 4, 4]"], "shrink a 28x28 image to nothing"),
])
def test_a_model_that_cannot_be_built_leaves_no_run_directory(tmp_path, capsys, sets, words):
    _fails(capsys, ["train", "configs/ae_mnist.toml", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path / "X")],
           words)
    assert not (tmp_path / "X").exists()
    (tmp_path / "s.toml").write_text(f'config = "ae_mnist.toml"\n[variants.bad]\nset = {json.dumps(sets)}\n')
    assert main(["study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "study")]) == 2
    assert not (tmp_path / "study" / "runs" / "bad").exists() and words in capsys.readouterr().err


def test_unknown_key_writes_nothing(tmp_path, capsys):
    _fails(capsys, ["train", "configs/vae_mnist.toml", "--set", "model.latnt_dim=2", "--out", str(tmp_path / "r")],
           "unknown key 'model.latnt_dim'", "valid keys:")
    _fails(capsys, ["train", "configs/vae_mnist.toml", "--set", "model.latent.name=gan", "--out", str(tmp_path / "r")],
           "model.latent.name: unknown 'gan'; choose from point, gaussian")
    _fails(capsys, ["train", "configs/vae_mnist.toml", "--set", "model.kind=ae", "--out", str(tmp_path / "r")],
           "model.kind has moved; use model.latent.name")
    _fails(capsys, ["train", str(tmp_path / "missing.toml")], "missing.toml: no such config file")
    assert not (tmp_path / "r").exists()


def _bad_data_dir(tmp_path, damage):
    d = tmp_path / "data"
    shutil.copytree(datasets.embedded_mnist_dir(), d)
    damage(d)
    return d


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "train-images-idx3-ubyte").unlink(), ["train-images-idx3-ubyte: no such file"]),
    (lambda d: (d / "t10k-images-idx3-ubyte").write_bytes((d / "t10k-images-idx3-ubyte").read_bytes()[:5000]),
     ["t10k-images-idx3-ubyte: truncated"]),
    (lambda d: (d / "t10k-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x03" + (d / "t10k-labels-idx1-ubyte").read_bytes()[4:]),
     ["t10k-labels-idx1-ubyte: wrong magic number 0x00000803"]),
    (lambda d: (d / "t10k-labels-idx1-ubyte").write_bytes(idx.encode(np.full(10000, 11, np.uint8))),
     ["t10k-labels-idx1-ubyte: label 11 at index 0 is out of range 0-9"]),
])
def test_bad_data_fails_before_the_run_directory_exists(tmp_path, capsys, mnist, damage, words):
    d = _bad_data_dir(tmp_path, damage)
    _fails(capsys, ["train", "configs/vae_mnist.toml", "--set", f"data.root={d}", "--out", str(tmp_path / "r")], *words)
    assert not (tmp_path / "r").exists()


def test_an_existing_run_is_never_overwritten(runs, tmp_path, capsys):
    target = tmp_path / "copy"
    shutil.copytree(runs / "vae", target)
    before = _tree(target)
    _fails(capsys, ["train", "configs/vae_mnist.toml", *TINY, "--out", str(target)], "already exists and is not empty")
    assert _tree(target) == before


def test_config_that_does_not_match_the_checkpoint(runs, tmp_path, capsys):
    target = tmp_path / "edited"
    shutil.copytree(runs / "vae", target)
    cfg = target / "config.toml"
    cfg.write_text(cfg.read_text().replace("latent_dim = 4", "latent_dim = 8"))
    before = _tree(target)
    _fails(capsys, ["eval", str(target)], "config.toml: does not match checkpoint", "model.latent_dim: 8 vs 4")
    _fails(capsys, ["sample", str(target), "--out", str(tmp_path / "x.png")], "does not match checkpoint")
    assert _tree(target) == before and not (tmp_path / "x.png").exists()
    (target / "best.pt").write_bytes(b"not a checkpoint")
    _fails(capsys, ["eval", str(target)], "best.pt: not a readable checkpoint")
    _fails(capsys, ["eval", str(tmp_path)], "not a run directory (no config.toml)")
    _fails(capsys, ["eval", str(runs / "vae"), "--k", "0"], "--k: must be at least 1")


def test_resume_refuses_to_change_the_model(runs, tmp_path, capsys):
    target = tmp_path / "r"
    shutil.copytree(runs / "vae", target)
    _fails(capsys, ["train", "--resume", str(target), "--set", "model.latent_dim=3"],
           "--set model.latent_dim: cannot change on --resume")
    assert main(["train", "--resume", str(target)]) == 0  # already complete: nothing to do
    assert "nothing to do" in capsys.readouterr().err


OLD_CVAE = """[model]
kind = "cvae"
network = "mlp"
latent_dim = 4
latent_channels = 0
hidden = [32]
activation = "relu"
likelihood = "bernoulli"
obs_scale = 0.0
learn_scale = false
recon_reduction = "sum"
beta = 1.0
kl_warmup_epochs = 0.0
input_noise = 0.0
channel = "none"
channel_sigma = 0.0
iw_samples = 1

"""


def _as_before_parts(text: str) -> str:
    """A stored config with its [model] tables in the flat form of earlier versions."""
    return text.split("[model]")[0] + OLD_CVAE + "[train]" + text.split("[train]")[1]


def test_a_run_of_an_earlier_version_evaluates_and_resumes(runs, tmp_path, capsys):
    """A CVAE run directory as earlier versions wrote it (the flat [model] table in config.toml
    and in each checkpoint): measured the same, resumed, and rewritten in today's form."""
    target = tmp_path / "r"
    shutil.copytree(runs / "cvae", target)
    (target / "config.toml").write_text(_as_before_parts((target / "config.toml").read_text()))
    for name in ("best.pt", "last.pt"):
        payload = checkpoint.load(target / name)
        checkpoint.save(target / name, {**payload, "config": _as_before_parts(payload["config"])})
    assert "kind = \"cvae\"" in (target / "config.toml").read_text()
    kept = json.loads((runs / "cvae" / "eval.json").read_text())
    (target / "eval.json").unlink()
    again = evaluate_run(RunDir.open(target), deep=False)  # as `aelab train` measured it
    assert (again["kind"], again["psnr_db"], again["ssim"]) == ("cvae", kept["psnr_db"], kept["ssim"])
    assert main(["train", "--resume", str(target), "--set", "train.epochs=2", "--quiet"]) == 0
    assert [json.loads(line)["epoch"] for line in (target / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    text = (target / "config.toml").read_text()
    assert "epochs = 2" in text and "[model.condition]\nname = \"label\"" in text and "kind" not in text


def test_the_installed_entry_point_exits_2_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "aelab", "train", str(tmp_path / "nope.toml")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"aelab: error: {tmp_path / 'nope.toml'}: no such config file (shipped configs: "
                                  f"{', '.join(shipped.names('config'))})")


def test_eval_prints_a_table_without_json(runs, capsys, monkeypatch):
    record = json.loads((runs / "vae" / "eval.json").read_text())
    monkeypatch.setattr("aelab.cli.evaluate_run", lambda run, k, **kw: {**record, "nll_is": 99.5, "nll_k": k})
    assert main(["eval", str(runs / "vae"), "--k", "7"]) == 0
    out = capsys.readouterr().out
    assert "NLL, importance sampled (K=7)" in out and "99.50  nats/image" in out and not out.startswith("{")
