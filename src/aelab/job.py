"""Jobs: a study's runs trained (or found trained), evaluated, drawn and reported.

    OUT/runs/NAME/      one ordinary run directory per run of the study
    OUT/figures/NAME/   its figures (PNG)
    OUT/report.html     the report, one self-contained file; OUT/report.md beside it
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import config, registry, report, study, train
from .config import RunConfig
from .data import ImageData
from .datasets import CLASS_NAMES
from .errors import AelabError
from .evaluate import cached_or_evaluate, load_model
from .rundir import RunDir

DEFAULT_STUDY = study.STUDY_DIR / "compare.toml"


def ensure_trained(cfg: RunConfig, path: Path, data: ImageData) -> RunDir:
    """The run of `cfg` at `path`: skipped if complete, resumed if interrupted, else trained."""
    if (path / "config.toml").is_file():
        run = RunDir.open(path)
        changed = config.diff(run.config(), cfg)
        if changed:
            raise AelabError(f"{path}: holds a run of another config ({'; '.join(changed)}); "
                             "remove it or choose another --out")
        if run.is_done():
            print(f"{path}: complete, skipped", file=sys.stderr)
            return run
        if run.last_path.is_file():
            print(f"{path}: interrupted, resuming", file=sys.stderr)
            train.fit(cfg, run, data, resume=True)
            return run
        for stale in path.iterdir():  # created but killed before its first checkpoint
            stale.unlink()
    print(f"{path}: training {cfg.model.kind}", file=sys.stderr)
    train.fit(cfg, RunDir.create(path, cfg), data)
    return RunDir.open(path)


class DataCache:
    """Runs on the same data share it in memory."""

    def __init__(self):
        self._held: dict = {}

    def __call__(self, cfg: RunConfig) -> ImageData:
        if cfg.data not in self._held:
            self._held[cfg.data] = registry.build_data(cfg)
        return self._held[cfg.data]


def check_report_dir(out: Path) -> None:
    """Refuse to write a report into a directory that holds something else."""
    if out.is_file():
        raise AelabError(f"{out}: is a file; --out must be a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.html").is_file() and not (out / "runs").is_dir():
        raise AelabError(f"{out}: not empty and holds no report; choose another --out")


def entry(name: str, run: RunDir, data: ImageData, out: Path, *, k: int | None, deep: bool) -> report.Entry:
    """Evaluate (or reuse eval.json) and draw one run's figures under out/figures/name."""
    from .figures import draw_run  # matplotlib: imported only when figures are drawn

    record = cached_or_evaluate(run, data, k=k, deep=deep)
    model, cfg, _ = load_model(run, "best")
    start = time.perf_counter()
    drawn = draw_run(model, data.to(registry.device(cfg)), run.metrics_path, out / "figures" / name, name,
                     CLASS_NAMES.get(cfg.data.name, [str(c) for c in range(data.num_classes)]))
    done = json.loads(run.done_path.read_text()) if run.done_path.is_file() else {}
    return report.Entry(name, cfg, record, run.metrics_path, done.get("train_seconds"), drawn,
                        time.perf_counter() - start)


def run_study(path: Path | None, out: Path, *, epochs: int | None = None, k: int | None = None,
              deep: bool = True) -> Path:
    """Train what is missing, evaluate, draw, report; returns the report's path."""
    s = study.load(path or DEFAULT_STUDY)
    check_report_dir(out)
    k = k or s.nll_k
    data_of, entries = DataCache(), []
    for r in s.runs:
        cfg = config.with_overrides(r.config, [f"train.epochs={epochs}"]) if epochs else r.config
        run = ensure_trained(cfg, out / "runs" / r.name, data_of(cfg))
        entries.append(entry(r.name, run, data_of(cfg), out, k=k, deep=deep))
    return _finish(out, s.title, s.question, entries)


def report_runs(run_dirs: list[Path], out: Path, *, title: str, k: int | None = None, deep: bool = True) -> Path:
    """A report of existing run directories, from their eval.json; a run without one (or with
    a stale one, or one of another K where k is given) is evaluated first."""
    check_report_dir(out)
    runs = [RunDir.open(p) for p in run_dirs]
    paths = [Path(p).resolve() for p in run_dirs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):  # e.g. two studies' runs/vae: name them by the study too
        names = [f"{p.parent.parent.name}-{p.name}" for p in paths]
    data_of, entries = DataCache(), []
    for name, run in zip(names, runs):
        entries.append(entry(name, run, data_of(run.config()), out, k=k, deep=deep))
    return _finish(out, title, "", entries)


def _finish(out: Path, title: str, question: str, entries: list[report.Entry]) -> Path:
    from .figures import comparison_curves

    overview = []
    if len(entries) > 1:
        overview.append(comparison_curves({e.name: e.metrics_path for e in entries}, out / "figures" / "all_curves.png"))
    html = report.write(out, title, question, entries, overview)
    print(report.table_text(entries))
    return html
