"""The run directory, the unit of record.

    RUN/config.toml    the resolved config
    RUN/meta.json      seed, versions, git SHA, command; how training ran (device, precision, processes)
    RUN/metrics.jsonl  one line per epoch: train and validation metrics
    RUN/last.pt        checkpoint after the latest epoch (for --resume)
    RUN/best.pt        checkpoint with the lowest validation loss, or `selection` part (for evaluation)
    RUN/done.json      written when training finished: epochs, seconds, what stopped it (epochs or time budget)
    RUN/eval.json      test metrics (aelab eval)
    RUN/.lock          held by the process training the run (runlock.py)
    RUN/code/          a copy of each file of the user's own parts, for the record (userparts.py);
                       later commands import the parts from their recorded names, never from here
"""

from __future__ import annotations

import functools
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from aelab import config, hardware, registry
from aelab.config import RunConfig
from aelab.errors import AelabError
from aelab.files import append_line, write_atomic
from aelab.language import N_
from aelab import userparts
from aelab.parts.autoencoder import Autoencoder
from aelab.runs import checkpoint

UNITS = N_("nats per image: sum over pixels, mean over images; mse per pixel")  # a report translates it


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def provenance() -> dict:
    sha = _git("rev-parse", "HEAD")
    return {
        "git_sha": sha,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if sha else None,
        "versions": {"aelab": _version("aelab"), "python": platform.python_version(),
                     "torch": torch.__version__, "numpy": _version("numpy")},
        "platform": platform.platform(),
        "command": sys.argv,
    }


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl, one per epoch; a line cut short (by a kill or a full
    disk while it was appended) is dropped. The one reader of the file."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _json(path: Path) -> dict:
    """A JSON file of the run ({} where it is missing or unreadable: a summary, not the record of truth)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@functools.lru_cache(maxsize=None)
def _say(line: str) -> None:
    """A line on stderr, once per process however often the run's config is read."""
    print(f"aelab: {line}", file=sys.stderr)


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_path(self) -> Path: return self.path / "config.toml"
    @property
    def meta_path(self) -> Path: return self.path / "meta.json"
    @property
    def metrics_path(self) -> Path: return self.path / "metrics.jsonl"
    @property
    def last_path(self) -> Path: return self.path / "last.pt"
    @property
    def best_path(self) -> Path: return self.path / "best.pt"
    @property
    def done_path(self) -> Path: return self.path / "done.json"
    @property
    def eval_path(self) -> Path: return self.path / "eval.json"

    @staticmethod
    def refuse_existing(path: Path) -> None:
        """Refuse, in one line, a folder for a new run that already holds anything (its lock aside)."""
        if path.exists() and (not path.is_dir() or any(p.name != ".lock" for p in path.iterdir())):
            raise AelabError(f"{path}: already exists and is not empty; use --resume {path} or another --out")

    @classmethod
    def create(cls, path: str | Path, cfg: RunConfig) -> "RunDir":
        """A new run directory; refuses one that already holds anything."""
        run = cls(Path(path))
        cls.refuse_existing(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg)
        parts = userparts.record(cfg.model)
        meta = {"seed": cfg.train.seed, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "units": UNITS, **provenance(), **({"user_parts": parts} if parts else {})}
        write_atomic(run.meta_path, json.dumps(meta, indent=2) + "\n")
        run._keep_code(parts)
        return run

    def _keep_code(self, parts: list[dict]) -> None:
        """RUN/code/: a copy of every file the user's parts ran (two of one name: the second
        prefixed by its folder's name)."""
        paths = list(dict.fromkeys(f["path"] for p in parts for f in p["files"]))
        for path in paths:
            (self.path / "code").mkdir(exist_ok=True)
            target = self.path / "code" / Path(path).name
            if target.exists():
                target = target.with_name(f"{Path(path).parent.name}-{target.name}")
            shutil.copyfile(path, target)

    def user_parts(self) -> list[dict]:
        """meta.json's record of the user's own parts: import name, files and their sha256."""
        return _json(self.meta_path).get("user_parts", [])

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(Path(path))
        if not run.config_path.is_file():
            raise AelabError(f"{run.path}: not a run directory (no config.toml)")
        return run

    def config(self) -> RunConfig:
        """The run's resolved config. A user's part is imported from its recorded name, saying
        from which file (once per process), with a warning where that file has changed."""
        cfg = config.load(self.config_path, stored=True)
        for line in userparts.changes(self.user_parts(), cfg.model):
            _say(line)
        return cfg

    def write_config(self, cfg: RunConfig) -> None:
        write_atomic(self.config_path, config.dumps(cfg))

    def is_done(self) -> bool:
        return self.done_path.is_file()

    def append_metrics(self, record: dict) -> None:
        append_line(self.metrics_path, json.dumps(record))

    def metrics(self) -> list[dict]:
        return read_metrics(self.metrics_path)

    def done(self) -> dict:
        """done.json: epochs, seconds, what stopped training ({} while unfinished)."""
        return _json(self.done_path)

    def evaluation(self, split: str = "test") -> dict:
        """eval.json: the test metrics of the last `aelab eval` ({} where there is none); with
        split "val", eval_val.json: the validation split's, which a search selects on."""
        return _json(self.evaluation_path(split))

    def evaluation_path(self, split: str = "test") -> Path:
        return self.eval_path if split == "test" else self.path / f"eval_{split}.json"

    def keep_metrics_until(self, epoch: int) -> None:
        """Drop lines of epochs after `epoch` (written by a run killed before its checkpoint)."""
        kept = [r for r in self.metrics() if r["epoch"] <= epoch]
        write_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def record_training(self, how: dict, from_epoch: int) -> None:
        """Add to meta.json how training ran from `from_epoch` on (device, resolved precision,
        threads, processes): one entry per start or resume, as hardware may differ between them."""
        meta = json.loads(self.meta_path.read_text()) if self.meta_path.is_file() else {}  # rewritten: read strictly
        meta["training"] = [e for e in meta.get("training", []) if e.get("from_epoch", 0) < from_epoch]
        meta["training"].append({"from_epoch": from_epoch, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **how})
        self.write_json(self.meta_path, meta)

    def training(self) -> list[dict]:
        """meta.json's record of how training ran (empty for runs trained before it was kept)."""
        return _json(self.meta_path).get("training", [])

    def write_json(self, path: Path, record: dict) -> None:
        write_atomic(path, json.dumps(record, indent=2) + "\n")

    def checkpoint(self, which: str = "best") -> tuple[dict, RunConfig]:
        """The checkpoint `which` ('best' or 'last') and the run's config, checked against each other."""
        path = self.best_path if which == "best" else self.last_path
        payload = checkpoint.check_run(checkpoint.load(path), path)
        cfg = self.config()
        saved = config.loads(payload["config"], f"{path} (its config)", stored=True)
        changed = config.diff(cfg, saved, sections=("data", "model"))
        if changed:
            raise AelabError(f"{self.config_path}: does not match checkpoint {path}: {'; '.join(changed)}")
        return payload, cfg

    def model(self, which: str = "best") -> tuple[Autoencoder, RunConfig, dict]:
        """(model, cfg, payload) of checkpoint `which` ("best" or "last"): built by the
        registry from the run's config and loaded, on the run's device, its convolutions in
        their fastest layout (hardware.conv_layout), in eval mode; no data is read."""
        payload, cfg = self.checkpoint(which)
        shape = payload["data"]
        model = registry.build_model(cfg, tuple(shape["image_shape"]), int(shape["num_classes"]))
        self.load_model(model, payload, self.best_path if which == "best" else self.last_path)
        device = hardware.device(cfg.train.device)
        return hardware.conv_layout(model.to(device), device).eval(), cfg, payload

    def load_model(self, model: Autoencoder, payload: dict, path: Path | None = None) -> Autoencoder:
        try:
            model.load_state_dict(payload["model"])
        except (RuntimeError, TypeError, ValueError) as e:
            detail = " ".join(str(e).split())
            raise AelabError(f"{path or self.path}: weights do not fit the model of config.toml: {detail[:300]}") from None
        return model
