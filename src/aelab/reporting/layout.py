"""The report laid out as the course's assignment asks for one, after a first screen to look at.

    title, question
    at a glance        each run's headline figure side by side, the few metrics that differ
    1. the task        what was trained on what data (from the runs' configs)
    2. hyperparameters every run's settings, one row a setting
    3. theory          each model's objective and what it buys (the parts' own theory), folded
    4. experiment      the full metrics table, the figures the assignment names, then the rest
    5. reflections     left empty for the student: aelab never writes in it

A run's headline figure follows from its parts: a conditioned model's label grid, else a
stochastic one's samples from the prior, else an autoencoder's reconstructions.

Every word here is an N_ Text (aelab/language.py); document.py renders the blocks in the
report's language. Names, settings' values, numbers and formulas stay as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aelab import config, language
from aelab.files import write_atomic
from aelab.language import N_, Language, join
from aelab.settings import value_text
from aelab.reporting import document as doc
from aelab.reporting.report import (
    IGNORED_DIFFERENCES,
    METRICS,
    UNITS,
    Entry,
    _figure_groups,
    _k_note,
    _theory,
    data_line,
    epoch_columns,
    explore_command,
    metric_columns,
    paper_epochs,
    settings_line,
    table_rows,
)

if TYPE_CHECKING:
    from aelab.reporting.figures import Drawn

ASSIGNED = ["reconstructions", "samples", "label_grid"]  # the figures the assignment names, in its order
GLANCE_METRICS = ["nll_is", "neg_elbo", "cond_acc", "recon_nats", "psnr_db", "fd_classifier", "kl", "probe_acc"]
GLANCE_AT_MOST = 5
SECTIONS = [N_("At a glance"), N_("1. The task"), N_("2. Hyperparameters"), N_("3. The models in theory"),
            N_("4. The models in experiment"), N_("5. Your reflections")]

REPORT = "report.html"  # a report folder's page; report.md beside it


def headline(e: Entry) -> str:
    """The figure that shows what the run's model is for (module docstring)."""
    m = e.cfg.model
    return "label_grid" if m.condition.prefix else "samples" if m.latent.stochastic else "reconstructions"


def glance_metrics(entries: list[Entry]) -> list[str]:
    """The few metrics the runs have that differ between them (all of them, for one run)."""
    found = []
    for key in GLANCE_METRICS:
        values = [e.record[key] for e in entries if key in e.record]
        if values and (len(entries) == 1 or len(set(values)) > 1 or len(values) < len(entries)):
            found.append(key)
    return found[:GLANCE_AT_MOST]


def _glance(entries: list[Entry]) -> list[doc.Block]:
    pictures = []
    for e in entries:
        d = next((d for d in e.figures if d.key == headline(e)), None)
        if d is not None:
            pictures.append(doc.Picture(d.path, N_("{figure} of {run}", figure=d.key, run=e.name),
                                        N_("{run}: {model}, {figure}", run=e.name, model=e.cfg.model.short,
                                           figure=d.title)))
    keys = glance_metrics(entries)
    blocks: list[doc.Block] = [doc.Heading(2, SECTIONS[0], "glance")]
    if pictures:
        blocks.append(doc.Pictures(pictures, columns=min(max(len(pictures), 2), 4)))
    if keys:
        # a study that sets its runs beside papers says, beside each number, how long the paper trained
        columns = (epoch_columns(entries) if paper_epochs(entries) else []) + metric_columns(keys, entries)
        blocks.append(doc.Table([N_("run"), N_("model"), *[head for head, _ in columns]],
                                [[e.name, e.cfg.model.short, *[cell(e) for _, cell in columns]] for e in entries]))
        blocks.append(doc.Para(N_("{units}{k_note}. The full table and what each column means are in section 4.",
                                  units=UNITS, k_note=_k_note(entries)), "caption"))
    return blocks


def _task(entries: list[Entry]) -> list[doc.Block]:
    data = list(dict.fromkeys(data_line(e) for e in entries))
    models = ", ".join(f"{e.name} ({e.cfg.model.short})" for e in entries)
    tested = sorted({e.record["n_images"] for e in entries if "n_images" in e.record})
    and_ = N_(" and ")  # (Babel does not extract a message nested in another's arguments)
    data = join(and_, data)
    said = (N_("{n} run(s) trained on {data}: {models}. Each is measured on the {tested} images of its test set.",
               n=len(entries), data=data, models=models, tested="/".join(map(str, tested))) if tested else
            N_("{n} run(s) trained on {data}: {models}.", n=len(entries), data=data, models=models))
    return [doc.Heading(2, SECTIONS[1], "task"), doc.Para(said),
            doc.Items([(e.name, settings_line(e), "") for e in entries])]


def _hyperparameters(entries: list[Entry]) -> list[doc.Block]:
    flats = [config.flat_in_use(e.cfg) for e in entries]
    keys = [k for k in dict.fromkeys(k for f in flats for k in f) if k not in IGNORED_DIFFERENCES]
    rows = [[k, *[value_text(f[k]) if k in f else "-" for f in flats]] for k in keys]
    return [doc.Heading(2, SECTIONS[2], "hyperparameters"),
            doc.Para(N_("Every setting of every run, as its config resolved it ('-': the run's parts have no such "
                        "setting)."), "caption"),
            doc.Table([N_("setting"), *[e.name for e in entries]], rows)]


def _theory_blocks(entries: list[Entry]) -> list[doc.Block]:
    return [doc.Heading(2, SECTIONS[3], "theory"),
            doc.Para(N_("Each part of the models, from their own configs: open a heading for its maths and citation."),
                     "caption"),
            *[doc.Folded(heading, paragraphs) for heading, paragraphs in _theory(entries)]]


def _experiment(entries: list[Entry], overview: list[Drawn], notes: list[str]) -> list[doc.Block]:
    from PIL import Image  # only where a report is drawn

    head, rows = table_rows(entries)
    blocks: list[doc.Block] = [
        doc.Heading(2, SECTIONS[4], "experiment"),
        doc.Para(N_("{units}{k_note}. Training, evaluation and drawing times are wall-clock seconds on the machine "
                    "that made this report.", units=UNITS, k_note=_k_note(entries)), "caption"),
        doc.Table(head, rows, "metrics"), *[doc.Para(n, "failed") for n in notes],
        doc.Folded(N_("What each column means"), [legend(key) for key in head if key in METRICS]),
        doc.Items([(e.name, N_("explore its code space in the browser:"), explore_command(e)) for e in entries])]
    groups = _figure_groups(entries)
    groups = [g for g in groups if g[0] in ASSIGNED] + [None] + [g for g in groups if g[0] not in ASSIGNED]
    for group in groups:
        if group is None:  # the figures of all runs together, after the assignment's own
            for d in overview:
                blocks += [doc.Heading(3, d.title), doc.Para(d.caption, "caption"),
                           doc.Pictures([doc.Picture(d.path, d.key)], wide=True)]
            continue
        key, title, caption, members = group
        with Image.open(members[0][1].path) as img:
            tall = img.width / img.height < 1.8  # learning curves are wide: two to a row
        blocks += [doc.Heading(3, title), doc.Para(caption, "caption"),
                   doc.Pictures([doc.Picture(d.path, N_("{figure} of {run}", figure=key, run=x.name),
                                             join(": ", [x.name, settings_line(x)]))
                                 for x, d in members], columns=min(max(len(members), 2), 4 if tall else 2))]
    return blocks


def legend(key: str) -> str:
    """'nll_is: NLL, importance sampled (nats/image)'"""
    label, unit, _ = METRICS[key]
    return N_("{key}: {label} ({unit})", key=key, label=label, unit=unit) if unit else N_(
        "{key}: {label}", key=key, label=label)


def blocks(cover: Cover, entries: list[Entry], overview: list[Drawn], stamp: str, notes: list[str] = ()) -> list[doc.Block]:
    """The report's blocks; the cover's `said` are lines under the title (how its figures are lettered)."""
    return [doc.Heading(1, cover.title), doc.Para(cover.question, "sub"), doc.Para(stamp, "sub"),
            *[doc.Para(s, "sub") for s in cover.said],
            *_glance(entries), *_task(entries), *_hyperparameters(entries), *_theory_blocks(entries),
            *_experiment(entries, overview, list(notes)),
            doc.Heading(2, SECTIONS[5], "reflections"),
            doc.Para(N_("Your own reflections go here: aelab never writes in this section."), "yours")]


def _failures(failed: dict[str, str]) -> list[str]:
    return [N_("{name} did not finish and is not in the table: {reason}", name=name, reason=reason)
            for name, reason in failed.items()]


@dataclass(frozen=True)
class Cover:
    """What a report says before its runs: its title, the question it answers, and lines under the title."""

    title: str
    question: str = ""
    said: list = field(default_factory=list)


def write(out: Path, cover: Cover, entries: list[Entry], overview: list[Drawn] = (),
          failed: dict[str, str] | None = None, lang: Language | None = None) -> Path:
    """DIR/report.html and DIR/report.md, in `lang` (default English), from entries (and
    overview figures drawn from all runs) whose figures lie under DIR; `failed` names runs
    that did not finish, with why; `cover`, the title, question and lines under the title."""
    stamp = N_("Made {when} by aelab from {n} run(s).", when=time.strftime("%Y-%m-%d %H:%M"), n=len(entries))
    laid = doc.translate(blocks(cover, entries, list(overview), stamp, _failures(failed or {})),
                         lang or language.get("en"))
    write_atomic((out / REPORT).with_suffix(".md"), doc.to_markdown(laid, out).encode())
    path = out / REPORT
    write_atomic(path, doc.to_html(laid[0].text, laid, (lang or language.get("en")).code).encode())
    return path
