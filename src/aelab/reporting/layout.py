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
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from aelab import config
from aelab.files import write_atomic
from aelab.parts.settings import value_text
from aelab.reporting import document as doc
from aelab.reporting.report import (
    UNITS,
    Entry,
    _figure_groups,
    _k_note,
    _theory,
    data_line,
    explore_command,
    metric_cell,
    settings_line,
    table_rows,
)

if TYPE_CHECKING:
    from aelab.reporting.figures import Drawn

ASSIGNED = ["reconstructions", "samples", "label_grid"]  # the figures the assignment names, in its order
GLANCE_METRICS = ["nll_is", "neg_elbo", "cond_acc", "recon_nats", "psnr_db", "fd_classifier", "kl", "probe_acc"]
GLANCE_AT_MOST = 5
SECTIONS = ["At a glance", "1. The task", "2. Hyperparameters", "3. The models in theory",
            "4. The models in experiment", "5. Your reflections"]
SKIPPED_SETTINGS = {"train.device", "train.threads", "train.log_every", "train.eval_batch_size"}


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
            pictures.append(doc.Picture(d.path, f"{d.key} of {e.name}", f"{e.name}: {e.cfg.model.short}, {d.title}"))
    keys = glance_metrics(entries)
    blocks: list[doc.Block] = [doc.Heading(2, SECTIONS[0], "glance")]
    if pictures:
        blocks.append(doc.Pictures(pictures, columns=min(max(len(pictures), 2), 4)))
    if keys:
        blocks.append(doc.Table(["run", "model", *keys], [[e.name, e.cfg.model.short, *[metric_cell(e, k) for k in keys]]
                                                          for e in entries]))
        blocks.append(doc.Para(f"{UNITS}{_k_note(entries)}. The full table is in section 4.", "caption"))
    return blocks


def _task(entries: list[Entry]) -> list[doc.Block]:
    data = list(dict.fromkeys(data_line(e) for e in entries))
    models = ", ".join(f"{e.name} ({e.cfg.model.short})" for e in entries)
    tested = sorted({e.record["n_images"] for e in entries if "n_images" in e.record})
    said = (f"{len(entries)} run(s) trained on {' and '.join(data)}: {models}. "
            + (f"Each is measured on the {'/'.join(map(str, tested))} images of its test set." if tested else ""))
    return [doc.Heading(2, SECTIONS[1], "task"), doc.Para(said),
            doc.Items([(e.name, settings_line(e), "") for e in entries])]


def _hyperparameters(entries: list[Entry]) -> list[doc.Block]:
    flats = [config.flat(e.cfg) for e in entries]
    keys = [k for k in dict.fromkeys(k for f in flats for k in f) if k not in SKIPPED_SETTINGS]
    rows = [[k, *[value_text(f[k]) if k in f else "-" for f in flats]] for k in keys]
    return [doc.Heading(2, SECTIONS[2], "hyperparameters"), doc.Table(["setting", *[e.name for e in entries]], rows)]


def _theory_blocks(entries: list[Entry]) -> list[doc.Block]:
    return [doc.Heading(2, SECTIONS[3], "theory"),
            doc.Para("Each part of the models, from their own configs: open a heading for its maths and citation.",
                     "caption"),
            *[doc.Folded(heading, paragraphs) for heading, paragraphs in _theory(entries)]]


def _experiment(entries: list[Entry], overview: list[Drawn], notes: list[str]) -> list[doc.Block]:
    from PIL import Image  # only where a report is drawn

    head, rows = table_rows(entries)
    blocks: list[doc.Block] = [
        doc.Heading(2, SECTIONS[4], "experiment"),
        doc.Para(f"{UNITS}{_k_note(entries)}. Training, evaluation and drawing times are wall-clock seconds on "
                 "the machine that made this report.", "caption"),
        doc.Table(head, rows, "metrics"), *[doc.Para(n, "failed") for n in notes],
        doc.Items([(e.name, "explore its code space in the browser:", explore_command(e)) for e in entries])]
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
                   doc.Pictures([doc.Picture(d.path, f"{key} of {x.name}", f"{x.name}: {settings_line(x)}")
                                 for x, d in members], columns=min(max(len(members), 2), 4 if tall else 2))]
    return blocks


def blocks(title: str, question: str, entries: list[Entry], overview: list[Drawn], stamp: str,
           notes: list[str] = ()) -> list[doc.Block]:
    return [doc.Heading(1, title), doc.Para(question, "sub"), doc.Para(stamp, "sub"),
            *_glance(entries), *_task(entries), *_hyperparameters(entries), *_theory_blocks(entries),
            *_experiment(entries, overview, list(notes)),
            doc.Heading(2, SECTIONS[5], "reflections"),
            doc.Para("Your own reflections go here: aelab never writes in this section.", "yours")]


def _failures(failed: dict[str, str]) -> list[str]:
    return [f"{name} did not finish and is not in the table: {reason}" for name, reason in failed.items()]


def write(out: Path, title: str, question: str, entries: list[Entry], overview: list[Drawn] = (),
          failed: dict[str, str] | None = None) -> Path:
    """DIR/report.html and DIR/report.md from entries (and overview figures drawn from all
    runs) whose figures lie under DIR; `failed` names runs that did not finish, with why."""
    stamp = f"Made {time.strftime('%Y-%m-%d %H:%M')} by aelab from {len(entries)} run(s)."
    laid = blocks(title, question, entries, list(overview), stamp, _failures(failed or {}))
    write_atomic(out / "report.md", doc.to_markdown(laid, out).encode())
    path = out / "report.html"
    write_atomic(path, doc.to_html(title, laid).encode())
    return path
