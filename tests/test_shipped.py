"""One resolver for what aelab ships: a config or a study by name from any folder, a file
beside you first; `aelab configs` lists them; and the same from the built wheel alone."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aelab import cli, config, shipped
from aelab.errors import AelabError
from aelab.studies import study

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_config_or_study_is_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = config.load(config.CONFIG_DIR / "vae_mnist.toml")
    for name in ("vae_mnist", "vae_mnist.toml", "configs/vae_mnist.toml"):
        assert config.load(name) == packaged
    assert study.find("latent_size") == study.find("studies/latent_size.toml") == shipped.FOLDERS["study"] / "latent_size.toml"
    with pytest.raises(AelabError, match="no such config file .shipped configs: ae_mnist, cvae_mnist"):
        config.load("vae_mnsit")


def test_a_file_beside_you_comes_before_a_shipped_one_of_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vae_mnist.toml").write_text("[model]\nlatent_dim = 3\n")
    assert config.load("vae_mnist.toml").model.latent_dim == 3
    assert config.load("vae_mnist").model.latent_dim == 20  # no such file here: the shipped one


def test_aelab_configs_lists_every_shipped_config_and_study(capsys):
    assert cli.main(["configs"]) == 0
    said = capsys.readouterr().out
    for kind in shipped.FOLDERS:
        for name in shipped.names(kind):
            line = next(x for x in said.splitlines() if x.split()[:1] == [name])
            assert len(line.split(None, 1)[1]) > 20  # what it is, from its opening comment
    assert set(shipped.names("config")) == {p.stem for p in (ROOT / "configs").glob("*.toml")}


@pytest.mark.slow
def test_the_wheel_alone_trains_a_shipped_config_by_name_from_an_empty_folder(tmp_path):
    """Built and installed without the source tree (its files only), run from an empty folder."""
    source = tmp_path / "source"  # a copy: the build leaves nothing in the checkout, and no old build/ gets in
    top = {".venv", ".git", "build", "runs", ".pytest_cache"}  # at the checkout's top only (src/aelab/runs is code)
    shutil.copytree(ROOT, source, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n == "__pycache__" or n.endswith(".egg-info")])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("aelab-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, timeout=600)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}

    def aelab(*args):
        return subprocess.run([sys.executable, "-m", "aelab", *args], cwd=empty, env=env, capture_output=True,
                              text=True, timeout=900)

    where = subprocess.run([sys.executable, "-c", "import aelab; print(aelab.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(tmp_path / "site"))
    listed = aelab("configs")
    assert listed.returncode == 0 and "vae_mnist" in listed.stdout and "compare" in listed.stdout
    trained = aelab("train", "vae_mnist", "--set", "train.epochs=1", "--out", "run", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert (empty / "run" / "best.pt").is_file()
