"""The command line: a thin layer over library functions.

Bad input ends with one line on stderr naming the file or key and the problem, exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import torch

from aelab import bench, config, language, registry
from aelab.errors import AelabError
from aelab.evaluation.evaluate import Target, evaluate_run
from aelab.files import WriteError, check_output
from aelab.language import N_
from aelab.reporting import report
from aelab.studies import pipeline
from aelab.studies.study import shipped_studies
from aelab.training import distributed, interrupt, owner, train
from aelab.runs.rundir import RunDir

def _at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise AelabError(f"{option}: must be at least 1, got {value}")


def _train(args: argparse.Namespace) -> int:
    """`aelab train`, also as one of several processes under torchrun: every process checks
    and loads the same config and data; rank 0 alone writes the run directory, and holds its
    lock from the first write on (a second process on the same run is refused)."""
    if args.resume:
        if args.config or args.out:
            raise AelabError("--resume RUN_DIR takes no CONFIG and no --out")
        run = RunDir.open(args.resume)
        keys = {config.parse_override(s)[0] for s in args.set}
        if keys - owner.RESUMABLE:
            raise AelabError(f"--set {sorted(keys - owner.RESUMABLE)[0]}: cannot change on --resume; "
                             f"allowed: {', '.join(sorted(owner.RESUMABLE))}")
        cfg = config.with_overrides(run.config(), args.set)
        if args.tensorboard and not cfg.train.tensorboard:
            raise AelabError(f"--tensorboard: {run.path} was started without it, and a resumed run keeps its settings")
        if owner.complete(run, cfg):
            print(f"{run.path}: already trained ({_length(cfg)}); nothing to do", file=sys.stderr)
            return 0
        out = run.path
    else:
        if not args.config:
            raise AelabError("train needs a CONFIG.toml (or --resume RUN_DIR)")
        cfg = config.load(args.config, args.set + ["train.tensorboard=true"] * args.tensorboard)
        out = check_output(args.out or Path("runs") / f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}",
                           folder=True)
        RunDir.refuse_existing(out)
    data = registry.build_data(cfg)  # bad data fails before anything is written (a bad model in the owner, too)
    group = distributed.start(cfg.train.device)
    try:  # the run directory is named on the first line its owner says (training/owner.py)
        run = owner.train_or_resume(cfg, out, data, train.Options(progress=False if args.quiet else None, group=group),
                                    new=not args.resume)
    except WriteError as e:  # what was written before is whole: the run goes on from its last checkpoint
        raise AelabError(f"{e}; make room, then resume with: aelab train --resume {out}") from None
    distributed.finish(group)  # after a failure the process just ends: torchrun stops the others
    if group.main and not args.no_eval:
        print(json.dumps(evaluate_run(run, data, deep=False), indent=2))
        print(f"for the NLL, probe and sample scores: aelab eval {run.path}", file=sys.stderr)
    distributed.leave(group, 0)
    return 0


def _length(cfg: config.RunConfig) -> str:
    t = cfg.train
    return " or ".join(([f"{t.epochs} epochs"] if t.epochs else []) + (
        [f"{t.time_budget_min:g} minutes"] if t.time_budget_min else []))


def _eval(args: argparse.Namespace) -> int:
    _at_least_one("--k", args.k)
    if args.latent_sigma is not None and args.latent_sigma < 0:
        raise AelabError(f"--latent-sigma: must be at least 0, got {args.latent_sigma}")
    record = evaluate_run(RunDir.open(args.run), k=args.k,
                          target=Target(latent_sigma=args.latent_sigma, test_folder=args.test_folder))
    print(json.dumps(record, indent=2) if args.json else report.metrics_text(record))
    return 0


def _sample(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in {".png", ".npy"}:
        raise AelabError(f"{out}: unknown image format; use .png or .npy")
    if out.exists() and not args.force:
        raise AelabError(f"{out}: already exists; choose another --out or add --force")
    check_output(out)
    _at_least_one("--n", args.n)
    model, cfg, _ = RunDir.open(args.run).model("best")
    device = next(model.parameters()).device
    labels = None
    if args.label is not None:
        if model.condition.dim == 0:
            raise AelabError(f"--label: the {cfg.model.short} of {args.run} is not conditioned on labels")
        if not 0 <= args.label < model.condition.dim:
            raise AelabError(f"--label: {args.label} is out of range 0-{model.condition.dim - 1}")
        labels = torch.full((args.n,), args.label, dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(args.n, labels, generator=generator)
    # Unlabelled samples of a conditioned model cycle through the classes: one class per column.
    nrow = model.condition.dim if labels is None and model.condition.dim else None
    from aelab.reporting.images import save_images  # PIL: imported only where images are written

    print(save_images(images, out, nrow))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.k is not None:
        _at_least_one("--k", args.k)
    if args.epochs is not None:
        _at_least_one("--epochs", args.epochs)
    _at_least_one("--jobs", args.jobs)
    if distributed.launched():
        raise AelabError("a study is not run under torchrun: list its runs with `aelab study STUDY --list` "
                         "and launch each `aelab train` command with torchrun")
    study = Path(args.study) if args.study else None
    if getattr(args, "model", None) and (study or args.list):
        raise AelabError("--model: the main job on your model.py takes no STUDY and no --list")
    out = check_output(Path(args.out or Path("runs") / study.stem), folder=True)
    if args.list:
        for command in pipeline.pending(study, out, epochs=args.epochs, sets=tuple(args.set)):
            print(shlex.join(command))
        return 0
    try:
        if getattr(args, "model", None):  # the main job on a student's model.py
            from aelab.checking import course_run

            html, failed = course_run.main(args.model, args.loss, out, pipeline.Running(
                args.epochs, args.k, args.jobs, language.get(args.lang or "en"), tuple(args.set)))
        else:
            html, failed = pipeline.run_study(study, out, pipeline.Running(
                args.epochs, args.k, args.jobs, language.get(args.lang) if args.lang else None, tuple(args.set)))
    except (interrupt.Interrupted, KeyboardInterrupt) as e:  # the study goes on with the same command
        signum, said = (e.signum, str(e)) if isinstance(e, interrupt.Interrupted) else (signal.SIGINT, "interrupted")
        again = ["aelab", args.command] + ([args.study] if args.study else []) + ["--out", str(out)] + [
            a for option, value in (("--jobs", args.jobs if args.jobs > 1 else None), ("--epochs", args.epochs),
                                    ("--k", args.k), ("--lang", args.lang), ("--model", getattr(args, "model", None)),
                                    ("--loss", getattr(args, "loss", None))) if value is not None
            for a in (option, str(value))] + [a for value in args.set for a in ("--set", value)]
        raise interrupt.Interrupted(signum, f"{said}; resume the study with: {shlex.join(again)}") from None
    print(f"report: {html}")
    if failed:
        print(f"aelab: {len(failed)} run(s) did not finish: {', '.join(failed)} (see the report)", file=sys.stderr)
        return 1
    return 0


def _tune(args: argparse.Namespace) -> int:
    from aelab.studies import tune  # optuna: imported only for a search
    _at_least_one("--jobs", args.jobs)
    if args.k is not None:
        _at_least_one("--k", args.k)
    path = Path(args.study)
    out = check_output(Path(args.out or Path("runs") / path.stem), folder=True)
    try:
        html, summary = tune.run_search(path, out, pipeline.Running(
            k=args.k, jobs=args.jobs, lang=language.get(args.lang) if args.lang else None, sets=tuple(args.set)),
            url=args.storage)
    except (interrupt.Interrupted, KeyboardInterrupt) as e:  # the search goes on with the same command
        signum, said = (e.signum, str(e)) if isinstance(e, interrupt.Interrupted) else (signal.SIGINT, "interrupted")
        again = ["aelab", "tune", args.study, "--out", str(out)] + [
            a for option, value in (("--jobs", args.jobs if args.jobs > 1 else None), ("--storage", args.storage),
                                    ("--k", args.k), ("--lang", args.lang)) if value is not None
            for a in (option, str(value))] + [a for value in args.set for a in ("--set", value)]
        raise interrupt.Interrupted(signum, f"{said}; the search goes on with: {shlex.join(again)}") from None
    print(f"{summary['complete']} complete, {summary['pruned']} pruned, {summary['failed']} failed; "
          f"best: {', '.join(summary['best'])}")
    if "base" in summary:
        print(f"better than the base config ({summary['base']}) on every objective: "
              f"{', '.join(summary['beat_base']) or 'none'}")
    print(f"report: {html}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.k is not None:
        _at_least_one("--k", args.k)
    out = check_output(args.out, folder=True)
    html = pipeline.report_runs([Path(r) for r in args.runs], out, title=args.title or N_("aelab report"), k=args.k,
                                lang=language.get(args.lang))
    print(f"report: {html}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from aelab.checking import run  # the checks import the whole model stack: only for this command

    skeletons = [n for n in args.name if n.endswith(".py") and ":" not in n]
    if args.table or len(args.name) > 1:
        if len(skeletons) != len(args.name):
            raise AelabError("check: several names (or --table) are submissions' model.py files, not parts")
        from aelab.checking import course_table

        return course_table.main(skeletons, args.table, sizes=_sizes(args), lang=language.get(args.lang),
                                 seconds=args.time_limit, memory_gb=args.memory_gb)
    if skeletons:
        from aelab.checking import course

        return course.main(skeletons[0], args.loss, _sizes(args), language.get(args.lang), as_json=args.json)
    text, passed = run.main(args.name[0], args.config)
    print(text)
    return 0 if passed else 1


def _sizes(args: argparse.Namespace):
    from aelab.course.code import Sizes

    for option in ("hidden_size", "latent_size"):
        _at_least_one("--" + option.replace("_", "-"), getattr(args, option))
    return Sizes(hidden_size=args.hidden_size, latent_size=args.latent_size)


def _configs(args: argparse.Namespace) -> int:
    """`aelab configs`: what aelab ships, each by the name `aelab train NAME` and `aelab study NAME` take."""
    from aelab import shipped

    for kind, command in (("config", "aelab train NAME"), ("study", "aelab study NAME")):
        print(f"{shipped.PLURAL[kind]} ({command}):")
        for name in shipped.names(kind):
            print(f"  {name:<22} {shipped.summary(shipped.find(kind, name))}")
    return 0


def _explore(args: argparse.Namespace) -> int:
    from aelab.explore import server  # matplotlib: imported only for the explorer

    return server.serve(args.run, args.host, args.port, args.verbose)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aelab", description="Train, measure and explore autoencoders.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one model from a TOML config")
    t.add_argument("config", nargs="?", help="CONFIG.toml, or the name of a shipped one (aelab configs lists them)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.latent_dim=2 (repeatable)")
    t.add_argument("--out", help="run directory to create (default runs/CONFIG-TIME)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--tensorboard", action="store_true",
                   help="write TensorBoard events under RUN/tensorboard (train.tensorboard = true)")
    t.add_argument("--no-eval", action="store_true",
                   help="skip the test-set summary after training (`aelab eval` or the study measures the run later)")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="test-set metrics of a run (also written to RUN/eval.json)")
    e.add_argument("run", metavar="RUN_DIR")
    e.add_argument("--k", type=int, default=1000,
                   help="importance samples per image for nll_is (default 1000; 5000 is the paper protocol)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.add_argument("--test-folder", metavar="PATH", help="a model trained on an image folder: measure it on the "
                   "images of PATH instead (same preprocessing); printed, RUN/eval.json is left as it is")
    e.add_argument("--latent-sigma", type=float, metavar="S", help="a model with a noisy channel: the noise's "
                   "standard deviation at evaluation (default 0: clean codes); printed, RUN/eval.json left as it is")
    e.set_defaults(func=_eval)

    s = sub.add_parser("sample", help="decode samples from the prior N(0, I)")
    s.add_argument("run", metavar="RUN_DIR")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, help="the digit to condition on (conditioned models)")
    s.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy ((N, H, W) floats in [0, 1])")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    s.set_defaults(func=_sample)

    for name, help_, study_help in [
        ("study", "run a study: its runs trained (complete ones skipped), evaluated and compared in one report",
         "the study file, or the name of a shipped one (" + ", ".join(shipped_studies()) + ")"),
        ("run", "the main job: a study (default: AE, VAE and CVAE on MNIST) trained, evaluated, reported",
         "the study (default: the packaged compare.toml)"),
    ]:
        r = sub.add_parser(name, help=help_)
        r.add_argument("study", nargs=None if name == "study" else "?", metavar="STUDY.toml", help=study_help)
        r.add_argument("--out", default=None if name == "study" else "runs/main",
                       help="directory of its runs, figures and report (default: "
                       + ("runs/STUDY, the study file's name)" if name == "study" else "runs/main)"))
        r.add_argument("--jobs", type=int, default=1,
                       help="runs trained at once, each in its own process with an equal share of the cores (default 1)")
        r.add_argument("--epochs", type=int, help="override train.epochs of every run")
        r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key of every run, after the study's own (repeatable), e.g. "
                       "--set train.time_budget_min=60")
        r.add_argument("--k", type=int, help="importance samples per image for nll_is (default: the study's nll_k)")
        r.add_argument("--lang", choices=list(language.LANGUAGES),
                       help="the report's language: " + ", ".join(f"{c} ({n})" for c, n in language.LANGUAGES.items())
                       + " (default: the study's [report] lang, else en)")
        if name == "run":
            r.add_argument("--model", metavar="model.py", help="the main job on your own classes: the assignment's "
                           "model.py as you wrote it (checked first), trained by your forward and Loss")
            r.add_argument("--loss", metavar="main.py", help="with --model: the file of your Loss class (default: "
                           "main.py beside model.py; none there: aelab's ELBO)")
        r.add_argument("--list", action="store_true",
                       help="print the `aelab train` command of every run still missing, one a line, and exit "
                       "(for a cluster's job scheduler; run the study again afterwards for the report)")
        r.set_defaults(func=_run)

    u = sub.add_parser("tune", help="search a study's [search] space with Optuna: each trial a run, the best "
                       "reported; the same command again goes on with a stopped search")
    u.add_argument("study", metavar="STUDY.toml", help="a study file with a [search] table, or a shipped one's name")
    u.add_argument("--out", help="directory of the search, its trials' runs and its report (default runs/STUDY)")
    u.add_argument("--jobs", type=int, default=1,
                   help="trials run at once here, each in its own process with an equal share of the cores (default 1); "
                   "commands on other machines that share --out join the same search")
    u.add_argument("--storage", metavar="URL", help="an Optuna RDB URL for the search's records (e.g. "
                   "postgresql://user@host/db; default: the journal file OUT/optuna.journal)")
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key of every trial, before the trial's own values (repeatable)")
    u.add_argument("--k", type=int, help="importance samples per image for nll_is (default: the study's nll_k)")
    u.add_argument("--lang", choices=list(language.LANGUAGES), help="the report's language (default: the study's)")
    u.set_defaults(func=_tune)

    o = sub.add_parser("report", help="an HTML + Markdown report of trained runs, figures side by side")
    o.add_argument("runs", nargs="+", metavar="RUN_DIR")
    o.add_argument("--out", required=True, help="directory for report.html, report.md and figures/")
    o.add_argument("--title", help="the report's title (default: aelab report, in the report's language)")
    o.add_argument("--lang", choices=list(language.LANGUAGES), default="en",
                   help="the report's language: " + ", ".join(f"{c} ({n})" for c, n in language.LANGUAGES.items()))
    o.add_argument("--k", type=int, help="importance samples per image for nll_is: runs evaluated with another K "
                   "are re-evaluated (default: take each run's eval.json as it is; 100 where there is none)")
    o.set_defaults(func=_report)

    x = sub.add_parser("explore", help="a latent-space explorer in the browser, served by a trained run's model")
    x.add_argument("run", metavar="RUN_DIR")
    x.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0: any free port)")
    x.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    x.add_argument("--verbose", action="store_true", help="log every request on stderr")
    x.set_defaults(func=_explore)

    c = sub.add_parser("check", help="test a part of your own (or a built-in one): shapes, gradients, learning, "
                       "save/load, its settings, and the maths (sampling, KL, ELBO), naming likely mistakes")
    c.add_argument("name", metavar="NAME", nargs="+", help="the assignment's model.py as a student wrote it (several: "
                   "a class's submissions, each in its own process), path/to/file.py:Class, package.module:Class, "
                   "or a built-in part as slot.name (e.g. prior.conditional)")
    c.add_argument("--config", metavar="CONFIG.toml", help="a part: the model and data to check it in (default: a "
                   "small MLP VAE on 512 MNIST digits), made an AE, a VAE or a CVAE where the part asks for one")
    c.add_argument("--loss", metavar="main.py", help="model.py: the file with the Loss class (default: main.py "
                   "beside model.py; none there: aelab's ELBO)")
    c.add_argument("--hidden-size", type=int, default=400, help="model.py: the hidden_size argument (default 400)")
    c.add_argument("--latent-size", type=int, default=20, help="model.py: the latent_size argument (default 20)")
    c.add_argument("--lang", choices=list(language.LANGUAGES), default="en",
                   help="model.py: the language of what is said (en, zh)")
    c.add_argument("--json", action="store_true", help="model.py: print JSON")
    c.add_argument("--table", metavar="OUT.csv", help="submissions: one row each, a column per model and mistake "
                   "(OUT.html beside it)")
    c.add_argument("--time-limit", type=float, default=120.0, help="submissions: seconds each may run (default 120)")
    c.add_argument("--memory-gb", type=float, default=4.0, help="submissions: memory each may take (default 4 GiB)")
    c.set_defaults(func=_check)

    g = sub.add_parser("configs", help="list the shipped configs and studies (aelab train NAME, aelab study NAME)")
    g.set_defaults(func=_configs)

    b = sub.add_parser("bench", help="speed of training and evaluation against the hardware floor")
    bench.add_arguments(b)
    b.set_defaults(func=bench.run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except AelabError as e:
        print(f"aelab: {_rank()}error: {e}", file=sys.stderr)
        return 2
    except train.Diverged as e:
        print(f"aelab: training stopped: {e}; the last good checkpoint is kept", file=sys.stderr)
        return 1
    except interrupt.Interrupted as e:
        print(f"aelab: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("aelab: interrupted; resume with aelab train --resume RUN_DIR", file=sys.stderr)
        return 130


def _rank() -> str:
    """'rank 1 of 4: ' in a process started by torchrun, so its errors say which one failed."""
    if not distributed.launched():
        return ""
    return f"rank {os.environ.get('RANK', '?')} of {os.environ.get('WORLD_SIZE', '?')}: "


def entry() -> None:
    sys.exit(main())
