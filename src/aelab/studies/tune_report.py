"""The report of a search (`aelab tune`): Optuna's own matplotlib figures of the search (its
history per objective, the Pareto front of two or three objectives, the settings' importances)
above the best trials, each an ordinary run of the report with its figures, beside each other;
every trial in DIR/trials.tsv."""

from __future__ import annotations

import math
from pathlib import Path

from aelab.evaluation import classifier
from aelab.files import write_atomic
from aelab.language import N_, Language
from aelab.reporting import fonts, plots
from aelab.reporting.layout import Cover
from aelab.studies import pipeline, study
from aelab.studies.folder import StudyDir
from aelab.studies.optuna_search import open_search, optuna_module
from aelab.runs.rundir import RunDir

BEST = 6  # at most this many best trials (the Pareto front, else the top) drawn in the report


def _complete(found) -> list:
    optuna = optuna_module()
    return [t for t in found.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]


def run_name(trial) -> str:
    return f"trial-{trial.number:04d}"


def best_trials(found, search) -> list:
    """The Pareto front (several objectives) or the best few (one), best first by the first objective."""
    complete = _complete(found)
    sign = 1 if search.directions[0] == "minimize" else -1
    chosen = found.best_trials if len(search.objectives) > 1 and complete else complete
    return sorted(chosen, key=lambda t: (sign * t.values[0], t.number))[:BEST if len(search.objectives) > 1 else 3]


def trials_table(found, search) -> str:
    """Every trial: number, state, objective values (of the validation split, which trials are
    chosen on), settings, run directory (tab-separated)."""
    keys = [p.key for p in search.space]
    lines = ["\t".join(["trial", "state", *(f"val_{m}" for m in search.metrics), *keys, "run", "base"])]
    for t in found.get_trials(deepcopy=False):
        values = t.values if t.values else [math.nan] * len(search.metrics)
        lines.append("\t".join([str(t.number), t.state.name.lower(), *(f"{v:.6g}" for v in values),
                                *(str(t.params.get(k, "")) for k in keys), t.user_attrs.get("run", ""),
                                "yes" if t.user_attrs.get("base") else ""]))
    return "\n".join(lines) + "\n"


def beating_base(found, search) -> tuple[object, list] | None:
    """The base config's complete trial and the trials better than it on every objective;
    None without a complete base trial."""
    complete = _complete(found)
    base = next((t for t in complete if t.user_attrs.get("base")), None)
    if base is None:
        return None
    signs = [1 if d == "minimize" else -1 for d in search.directions]
    better = [t for t in complete if t is not base
              and all(sign * v < sign * b for sign, v, b in zip(signs, t.values, base.values))]
    return base, better


def _figures(found, search, folder: Path, lang: Language) -> list:
    from optuna.visualization import matplotlib as ov

    from aelab.reporting.figures import Drawn

    complete = _complete(found)
    if not complete:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    several = len(search.objectives) > 1
    import matplotlib
    # optuna's plots switch matplotlib to its ggplot style for good: keep that to these figures
    with fonts.lettered(lang), matplotlib.rc_context():
        # each objective's value of a trial (None: the one objective, Optuna's default)
        targets = [(metric, (lambda t, i=i: t.values[i]) if several else None) for i, metric in enumerate(search.metrics)]
        for metric, target in targets:
            ax = ov.plot_optimization_history(found, target=target, target_name=metric)
            drawn.append(Drawn("tune_history", plots.save(ax.figure, folder / f"history_{metric}.png"), N_(
                "{metric} of each complete trial in the order the trials were asked for, and the best so far "
                "(Optuna's plot_optimization_history).", metric=metric)))
        if several and len(search.objectives) <= 3:
            ax = ov.plot_pareto_front(found, target_names=search.metrics)
            drawn.append(Drawn("tune_pareto", plots.save(ax.figure, folder / "pareto_front.png"), N_(
                "Every complete trial by its objectives; the Pareto front (trials no other beats on every objective) "
                "in its own colour (Optuna's plot_pareto_front).")))
        varied = [p.key for p in search.space if len({t.params.get(p.key) for t in complete}) > 1]
        if len(complete) >= 3 and varied:
            for metric, target in targets:
                ax = ov.plot_param_importances(found, target=target, target_name=metric)
                drawn.append(Drawn("tune_importance", plots.save(ax.figure, folder / f"importance_{metric}.png"), N_(
                    "How much of {metric}'s variation over the complete trials each setting explains (fANOVA, "
                    "Optuna's plot_param_importances; a few trials give a rough estimate).", metric=metric)))
    import matplotlib.pyplot as plt
    plt.close("all")
    return drawn


def _values(values, metrics) -> str:
    """'cond_acc 0.981, neg_elbo 97.3': objective values as a sentence names them."""
    return ", ".join(f"{m} {v:.4g}" if isinstance(v, (int, float)) else f"{m} -" for m, v in zip(metrics, values))


def summary(trials) -> dict:
    """How many trials are complete, pruned and failed."""
    optuna = optuna_module()
    count = lambda state: sum(t.state == state for t in trials)  # noqa: E731
    return {"complete": count(optuna.trial.TrialState.COMPLETE), "pruned": count(optuna.trial.TrialState.PRUNED),
            "failed": count(optuna.trial.TrialState.FAIL)}


def write(s: study.Study, out: Path, url: str | None, k: int | None, lang: Language) -> tuple[Path, dict]:
    """DIR/report.html and DIR/trials.tsv of the search; returns the report's path and
    {"complete", "pruned", "failed", "best"}."""
    found = open_search(s, out, url)
    states = summary(found.get_trials(deepcopy=False))
    write_atomic(out / "trials.tsv", trials_table(found, s.search).encode())
    best = best_trials(found, s.search)
    data_of, judging, entries = pipeline.DataCache(), classifier.Judging.from_env(), []
    for t in best:
        run = RunDir.open(out / t.user_attrs["run"])
        job = pipeline.Job(out, k or s.nll_k, figures=s.figures, judging=judging, lang=lang)
        entries.append(pipeline.entry(f"trial-{t.number:04d}", run, data_of(run.config()), job))
    if not entries:
        raise_none(s, states)
    said = [N_("{complete} trial(s) complete, {pruned} pruned, {failed} failed, of {trials}.",
               complete=states["complete"], pruned=states["pruned"], failed=states["failed"], trials=s.search.trials),
            N_("The report shows the best trials ({which}); every trial is in trials.tsv beside it.",
               which=N_("the Pareto front") if len(s.search.objectives) > 1 else N_("the top three")),
            N_("Trials are chosen on the validation split: the search's objectives, its figures and trials.tsv "
               "are validation metrics. The tables and figures of the best trials below are their test metrics, "
               "measured once they were chosen."),
            *[N_("{trial}: validation {val}; test {test}.", trial=e.name,
                 val=_values(t.values, s.search.metrics), test=_values([e.record.get(m) for m in s.search.metrics],
                                                                      s.search.metrics))
              for t, e in zip(best, entries)]]
    against = beating_base(found, s.search)
    if against:
        base, better = against
        names = ", ".join(f"trial-{t.number:04d}" for t in better)
        said.append(N_("{base} is the base config; {n} trial(s) beat it on every objective{which}.",
                       base=run_name(base), n=len(better), which=": " + names if better else ""))
    html = pipeline.finish(out, Cover(s.title, s.question, said), entries, lang=lang,
                           extra=_figures(found, s.search, StudyDir(out).figures("search"), lang))
    return html, {**states, "best": [e.name for e in entries],
                  **({"base": f"trial-{against[0].number:04d}", "beat_base": [f"trial-{t.number:04d}" for t in against[1]]}
                     if against else {})}


def raise_none(s: study.Study, states: dict) -> None:
    from aelab.errors import AelabError
    raise AelabError(f"{s.path}: no trial of the search is complete ({states['pruned']} pruned, "
                     f"{states['failed']} failed); see trials.tsv")

