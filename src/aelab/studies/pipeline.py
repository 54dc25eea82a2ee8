"""Jobs: a study's runs trained (or found trained), evaluated, drawn and reported.

    OUT/runs/NAME/      one ordinary run directory per run of the study
    OUT/figures/NAME/   its figures (PNG)
    OUT/report.html     the report, one self-contained file; OUT/report.md beside it
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from aelab import config, hardware, language, registry
from aelab.config import RunConfig
from aelab.data.splits import ImageData
from aelab.errors import AelabError
from aelab.evaluation import classifier
from aelab.evaluation.evaluate import cached_or_evaluate
from aelab.language import N_, Language, Text
from aelab.reporting import layout, report
from aelab.reporting.layout import Cover
from aelab.reporting.figure_data import FigureOptions
from aelab.studies import study
from aelab.studies.folder import StudyDir
from aelab.training import owner, train
from aelab.runs.rundir import RunDir

DEFAULT_STUDY = study.STUDY_DIR / "compare.toml"


def train_command(r: study.Run, path: Path, epochs: int | None = None) -> list[str] | None:
    """The `aelab train` command that trains study run `r` into `path` by itself (a job of a
    cluster's scheduler, say), or None where it is complete. An interrupted run resumes. The
    study evaluates its runs itself, so the command does not."""
    cfg = _with_epochs(r.config, epochs)
    run = owner.existing(cfg, path)
    if run:
        return None if owner.complete(run, cfg) else ["aelab", "train", "--resume", str(path), "--no-eval"]
    sets = [*r.sets, *([f"train.epochs={epochs}"] if epochs else [])]
    return ["aelab", "train", str(r.source), *[a for s in sets for a in ("--set", s)], "--out", str(path), "--no-eval"]


def _with_epochs(cfg: RunConfig, epochs: int | None) -> RunConfig:
    return config.with_overrides(cfg, [f"train.epochs={epochs}"]) if epochs else cfg


def pending(path: Path | None, out: Path, *, epochs: int | None = None, sets: tuple[str, ...] = ()) -> list[list[str]]:
    """The train command of every run of the study at `path` (with `sets` on every run) still
    missing under out/runs: run them anywhere (in parallel), then `aelab study` finds them done
    and reports."""
    s = _runs_of(path, sets)
    commands = [train_command(r, StudyDir(out).run(r.name), epochs) for r in s.runs]
    return [c for c in commands if c]


def _runs_of(path: Path | None, sets: tuple[str, ...]) -> study.Study:
    s = study.load(path or DEFAULT_STUDY, sets)
    if s.search:
        raise AelabError(f"{s.path}: is a search ([search]): run it with aelab tune {s.path}")
    return s


class DataCache:
    """Runs on the same data share it in memory."""

    def __init__(self):
        self._held: dict = {}

    def __call__(self, cfg: RunConfig) -> ImageData:
        if cfg.data not in self._held:
            self._held[cfg.data] = registry.build_data(cfg)
        return self._held[cfg.data]


def entry(name: str, run: RunDir, data: ImageData, job: Job) -> report.Entry:
    """Evaluate (or reuse eval.json) and draw one run's figures under OUT/figures/name, as `job` says."""
    from aelab.reporting.figures import draw_run  # matplotlib: imported only when figures are drawn

    record = cached_or_evaluate(run, data, k=job.k, deep=job.deep, judging=job.judging)
    model, cfg, _ = run.model("best")
    start = time.perf_counter()
    drawn = draw_run(model, data.to(hardware.device(cfg.train.device)), run.metrics_path,
                     StudyDir(job.out).figures(name), name, job.figures, job.lang)
    done = run.done()
    return report.Entry(name, cfg, record, run.metrics_path, done, run.training(), drawn,
                        time.perf_counter() - start)


@dataclass(frozen=True)
class Job:
    """What every run of a study is evaluated and drawn with, the same in each process."""

    out: Path
    k: int | None  # importance samples of nll_is (None: what the run's eval.json has, else the default)
    deep: bool = True
    figures: FigureOptions = FigureOptions()
    judging: classifier.Judging | None = None
    lang: Language | None = None  # the report's, and its figures' (None: English)


@dataclass(frozen=True)
class Running:
    """How a study's runs are run, as the command line gives it: `epochs` over every run's,
    nll_is's K, `jobs` runs at once (each in its own process), the report's language (None: the
    study's), `sets` on every run's config last, and the judge of samples (None: from the environment)."""

    epochs: int | None = None
    k: int | None = None
    jobs: int = 1
    lang: Language | None = None
    sets: tuple[str, ...] = ()
    judging: classifier.Judging | None = None
    deep: bool = True


def _study_run(name: str, cfg: RunConfig, job: Job, data_of: "DataCache", progress: bool | None) -> report.Entry:
    run = owner.train_or_resume(cfg, StudyDir(job.out).run(name), data_of(cfg), train.Options(progress=progress))
    return entry(name, run, data_of(cfg), job)


@functools.lru_cache(maxsize=1)
def _worker_data() -> "DataCache":
    """A --jobs worker's data, loaded once per process and shared by the runs it trains."""
    return DataCache()


def _worker_run(name: str, cfg: RunConfig, job: Job, threads: int) -> report.Entry:
    torch.set_num_threads(threads)
    return _study_run(name, cfg, job, _worker_data(), progress=False)


def run_study(path: Path | None, out: Path, how: Running = Running(), said: tuple = ()) -> tuple[Path, dict[str, str]]:
    """Train what is missing, evaluate, draw, report (in `lang`, else the study's [report]
    lang), `said` lines under its title. With jobs > 1, that many runs at once, each in its own process with an equal
    share of the cores. A run that fails (diverges, bad config) does not stop the others: it
    is listed in the report and returned with its reason. Returns the report's path and the
    failures. `sets` override every run's config last (`aelab study --set`)."""
    s = _runs_of(path, how.sets)
    StudyDir(out).check()
    job = Job(out, how.k or s.nll_k, how.deep, s.figures, how.judging or classifier.Judging.from_env(), how.lang or s.lang)
    runs = [(r.name, _with_epochs(r.config, how.epochs)) for r in s.runs]
    results: dict[str, report.Entry | str] = {}
    jobs = how.jobs
    if jobs > 1 and len(runs) > 1:
        jobs = min(jobs, len(runs))
        threads = hardware.threads_per(jobs)
        print(f"{len(runs)} runs, {jobs} at a time, {threads} thread(s) each", file=sys.stderr)
        context = multiprocessing.get_context("spawn")  # no forked torch thread pools
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {name: pool.submit(_worker_run, name, cfg, job, threads) for name, cfg in runs}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except (AelabError, train.Diverged) as e:
                    results[name] = _failed(name, e)
    else:
        data_of = DataCache()
        for name, cfg in runs:
            try:
                results[name] = _study_run(name, cfg, job, data_of, progress=None)
            except (AelabError, train.Diverged) as e:
                results[name] = _failed(name, e)
    published = {r.name: dict(r.published) for r in s.runs}
    entries = [dataclasses.replace(r, published=published[name]) for name, r in results.items()
               if isinstance(r, report.Entry)]
    failed = {name: r for name, r in results.items() if isinstance(r, str)}
    if not entries:
        raise AelabError(f"{s.path}: no run of the study finished: " + "; ".join(f"{n}: {r}" for n, r in failed.items()))
    return finish(out, Cover(s.title, s.question, list(said)), entries, failed, job.lang), failed


def _failed(name: str, error: Exception) -> str:
    reason = f"{'diverged: ' if isinstance(error, train.Diverged) else ''}{error}"
    print(f"{name}: failed: {reason}", file=sys.stderr)
    return reason


def report_runs(run_dirs: list[Path], out: Path, *, title: str, k: int | None = None, deep: bool = True,
                judging: classifier.Judging | None = None, lang: Language | None = None) -> Path:
    """A report of existing run directories, in `lang` (default English), from their
    eval.json; a run without one (or with a stale one, or one of another K where k is given)
    is evaluated first."""
    StudyDir(out).check()
    runs = [RunDir.open(p) for p in run_dirs]
    paths = [Path(p).resolve() for p in run_dirs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):  # e.g. two studies' runs/vae: name them by the study too
        names = [f"{p.parent.parent.name}-{p.name}" for p in paths]
    data_of, entries = DataCache(), []
    for name, run in zip(names, runs):
        entries.append(entry(name, run, data_of(run.config()), Job(out, k, deep, judging=judging, lang=lang)))
    return finish(out, Cover(title), entries, lang=lang)


def finish(out: Path, cover: Cover, entries: list[report.Entry], failed: dict[str, str] | None = None,
           lang: Language | None = None, extra: list = ()) -> Path:
    """The report of `entries` under `out`, with the overview figures of all runs and `extra`
    figures (a search's) before them."""
    from aelab.reporting import fonts
    from aelab.reporting.codespace import channel_curve
    from aelab.reporting.figures import Drawn, comparison_curves

    lang = lang or language.get("en")
    overview = list(extra)
    if len(entries) > 1:
        overview.append(comparison_curves({e.name: e.metrics_path for e in entries},
                                          StudyDir(out).figures("all_curves.png"),
                                          lang))
    channels = {e.name: e.record for e in entries if "channel_psnr_db" in e.record}
    if channels:
        curves = channel_curve(channels, StudyDir(out).figures("channel_curves.png"), lang)
        overview.append(Drawn("channel_curves", curves,
                              N_("Mean test PSNR of each run with Gaussian noise of standard deviation sigma added to "
                                 "its power-normalised code at evaluation (dB; per-image PSNR on [0, 1], averaged).")))
    html = layout.write(out, Cover(Text(cover.title), Text(cover.question), [*cover.said, *fonts.missing(lang)]),
                        entries, overview, failed or {}, lang)
    print(report.table_text(entries))
    return html
