"""Reports: metrics as text for the terminal, and the HTML + Markdown report of runs.

`report.html` is one file (PNGs embedded as data URIs, styles inline, no script, nothing
fetched); `report.md` sits beside it and links the same PNGs under `figures/`.
"""

from __future__ import annotations

import base64
import html
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aelab import config
from aelab.config import RunConfig
from aelab.files import write_atomic
from aelab.parts import theory
from aelab.parts.settings import value_text
from aelab.training.rundir import UNITS

if TYPE_CHECKING:
    from aelab.reporting.figures import Drawn

# key -> (label, unit, format)
METRICS = {
    "loss": ("training objective", "nats/image", ".2f"),
    "neg_elbo": ("negative ELBO", "nats/image", ".2f"),
    "nll_is": ("NLL, importance sampled", "nats/image", ".2f"),
    "recon_nats": ("reconstruction term -log p(x|z)", "nats/image", ".2f"),
    "kl": ("KL(q(z|x) || p(z))", "nats/image", ".2f"),
    "mse": ("reconstruction MSE", "per pixel", ".5f"),
    "psnr_db": ("reconstruction PSNR", "dB", ".2f"),
    "ssim": ("reconstruction SSIM", "", ".4f"),
    "psnr_train_sigma_db": ("PSNR with channel noise at the training sigma", "dB", ".2f"),
    "ssim_train_sigma": ("SSIM with channel noise at the training sigma", "", ".4f"),
    "psnr_noisy_db": ("PSNR of the noisy input", "dB", ".2f"),
    "psnr_denoised_db": ("PSNR of the denoised output", "dB", ".2f"),
    "active_units": ("active units (Var E[z|x] > 0.01)", "dims", "d"),
    "probe_acc": ("linear probe accuracy on codes", "", ".4f"),
    "cond_acc": ("samples classified as their label", "", ".4f"),
    "sample_class_entropy": ("class entropy of prior samples", "nats (at most log C, C classes)", ".3f"),
    "fd_classifier": ("Frechet distance, classifier features", "not Inception FID", ".2f"),
    "classifier_test_acc": ("reference classifier test accuracy", "", ".4f"),
}
COLUMNS = ["neg_elbo", "nll_is", "recon_nats", "kl", "mse", "psnr_db", "ssim", "psnr_train_sigma_db", "ssim_train_sigma",
           "psnr_noisy_db", "psnr_denoised_db",
           "active_units", "probe_acc",
           "cond_acc", "sample_class_entropy", "fd_classifier"]
SAMPLE_SCORES = {"cond_acc", "sample_class_entropy", "fd_classifier"}  # over `samples_judged` prior samples
IGNORED_DIFFERENCES = {"train.device", "train.threads", "train.log_every", "train.eval_batch_size"}


def metrics_text(record: dict) -> str:
    head = (f"{record['run']}: {record['kind']} on {record['dataset']} (binarize={record['binarize']}), "
            f"{record.get('test_folder', record['split'] + ' set')} of {record['n_images']} images, "
            f"{record['checkpoint']} of epoch {record['epoch']}"
            + (f", channel noise sigma {record['latent_sigma']:g}" if "latent_sigma" in record else ""))
    lines = [head]
    for key, (label, unit, fmt) in METRICS.items():
        if key in record:
            extra = (f" (K={record['nll_k']})" if key == "nll_is" else
                     f" (N={record['samples_judged']})" if key in SAMPLE_SCORES and "samples_judged" in record else "")
            lines.append(f"  {label + extra:<42} {format(record[key], fmt):>10}  {unit}")
    lines.append("  (losses: sum over pixels, mean over images)")
    return "\n".join(lines)


@dataclass(frozen=True)
class Entry:
    """One run as the report shows it."""
    name: str
    cfg: RunConfig
    record: dict  # eval.json
    metrics_path: Path  # the run's metrics.jsonl
    done: dict  # done.json: epochs, seconds, what stopped training ({} while unfinished)
    training: list[dict] = field(default_factory=list)  # meta.json's record of how it trained
    figures: list["Drawn"] = field(default_factory=list)
    draw_seconds: float = 0.0

    @property
    def train_seconds(self) -> float | None:
        return self.done.get("train_seconds")


def _cell(value, fmt: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, fmt) if fmt else (f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}")
    return str(value)


def _flat(cfg: RunConfig) -> dict[str, object]:
    """{"model.latent.name": "gaussian", ...}"""
    return config.flat(cfg)


def varied_keys(cfgs: list[RunConfig]) -> list[str]:
    """Config keys whose values differ between the runs that have them."""
    flat = [_flat(c) for c in cfgs]
    keys = dict.fromkeys(k for f in flat for k in f)
    # a part's settings exist only where that part is chosen (its name's column shows where it
    # is not): a setting varies when the runs that have it differ in it
    return [k for k in keys if k not in IGNORED_DIFFERENCES and len({repr(f[k]) for f in flat if k in f}) > 1]


def _seconds(entry: Entry) -> dict[str, str]:
    eval_s = sum(entry.record.get("seconds", {}).values())
    train_s = "-" if entry.train_seconds is None else f"{entry.train_seconds:.1f}"
    return {"train s": train_s, "eval s": f"{eval_s:.1f}", "figures s": f"{entry.draw_seconds:.1f}"}


def table_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """The comparison table: name, the settings that differ, epoch, metrics, seconds."""
    keys = varied_keys([e.cfg for e in entries])
    metrics = [c for c in COLUMNS if any(c in e.record for e in entries)]
    head = ["run", *map(config.short_key, keys), "epoch", *metrics, "train s", "eval s", "figures s"]
    rows = []
    for e in entries:
        settings = _flat(e.cfg)
        row = [e.name, *[value_text(settings[k]) if k in settings else "-" for k in keys], _cell(e.record.get("epoch"))]
        row += [_cell(e.record.get(m), METRICS[m][2] if isinstance(e.record.get(m), float) else "") for m in metrics]
        rows.append(row + list(_seconds(e).values()))
    return head, rows


def table_text(entries: list[Entry]) -> str:
    head, rows = table_rows(entries)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(head, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join([f"Test set ({UNITS}{_k_note(entries)}):", *lines])


def _k_note(entries: list[Entry]) -> str:
    ks = sorted({e.record["nll_k"] for e in entries if "nll_k" in e.record})
    return f"; nll_is with K={'/'.join(map(str, ks))} importance samples" if ks else ""


def _figure_groups(entries: list[Entry]) -> list[tuple[str, str, str, list[tuple[Entry, "Drawn"]]]]:
    """(key, title, caption, [(run, its figure)]) for every kind of figure some run has, in drawing order."""
    groups: dict[str, tuple[str, list]] = {}
    for e in entries:
        for d in e.figures:
            groups.setdefault(d.key, (d.caption, []))[1].append((e, d))
    from aelab.reporting.figures import FIGURES  # matplotlib: imported only when a report is drawn

    order = ["curves", *FIGURES]
    keys = sorted(groups, key=lambda k: order.index(k) if k in order else len(order))
    return [(k, groups[k][1][0][1].title, groups[k][0], groups[k][1]) for k in keys]


def _theory(entries: list[Entry]) -> list[tuple[str, list[str]]]:
    return theory.sections([x.cfg for x in entries])


def _trained_on(e: Entry) -> str:
    """How the run trained, from meta.json: resolved precision, device, processes
    ('float32 on cpu'); the config's own precision for runs trained before that was kept."""
    if not e.training:
        p = e.cfg.train.precision
        return "" if p in ("float32", "auto") else f"{p} training"
    ways = dict.fromkeys(f"{r['precision']} on {r['device']}" + (f" x {r['processes']} processes" if r.get("processes", 1) > 1 else "")
                         for r in e.training)
    return "trained in " + " then ".join(ways)


def _length(e: Entry) -> str:
    """'10 epochs', or a budgeted run's budget and the epochs it reached."""
    t = e.cfg.train
    if not t.time_budget_min:
        return f"{t.epochs} epochs"
    reached = e.done.get("epochs_reached")
    return f"{t.time_budget_min:g}-minute budget" + (f" ({reached:g} epochs reached)" if reached is not None else "")


def settings_line(e: Entry) -> str:
    t, d = e.cfg.train, e.cfg.data
    train = [f"weight decay {t.weight_decay:g}" if t.weight_decay else "",
             f"{t.lr_schedule} lr" if t.lr_schedule != "constant" else "",
             _trained_on(e)]
    data = (f"folder {'/'.join(Path(d.root).parts[-2:])} at {d.image_size}x{d.image_size}" if d.name == "folder" else d.name) + (
        f" ({d.binarize} binarisation)" if d.binarize != "none" else "")
    return (e.cfg.model.describe() + f"; {data}; "
            f"{_length(e)}, batch {t.batch_size}, lr {t.lr:g}" + "".join(f", {x}" for x in train if x)
            + f", seed {t.seed}")



def explore_command(e: Entry) -> str:
    """The command that opens the run's latent-space explorer (explore.py)."""
    return shlex.join(["aelab", "explore", str(e.metrics_path.parent)])


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1600px;padding:1.5em 2em;color:#222}
h1{margin-bottom:.1em} .sub{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:13px;margin:.6em 0} th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left;font-weight:600;white-space:nowrap}
.wide-table{overflow-x:auto;max-width:100%}
.row{display:grid;gap:1em;align-items:start}
figure{margin:0;border:1px solid #e4e4e4;border-radius:6px;padding:.5em;background:#fff}
figure img{width:100%;height:auto;display:block} figure.wide{width:fit-content;max-width:100%}
figure.wide img{width:auto;max-width:100%} figcaption{font-size:13px;color:#444;margin-top:.3em}
.caption{color:#444;margin:.2em 0 .6em} .failed{color:#a00;font-weight:600} .theory p{max-width:60em} code{background:#f5f5f5;padding:0 .2em}
"""


def _aspect(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as img:
        return img.width / img.height


def _img(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_html(title: str, question: str, entries: list[Entry], overview: list["Drawn"], stamp: str,
                notes: list[str] = ()) -> str:
    e = html.escape
    head, rows = table_rows(entries)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(title)}</h1><p class='sub'>{e(question)}</p><p class='sub'>{e(stamp)}</p>",
             f"<h2>Test-set metrics</h2><p class='caption'>{e(UNITS + _k_note(entries))}. "
             "Training, evaluation and drawing times are wall-clock seconds on the machine that made this report.</p>",
             "<div class='wide-table'><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table></div>",
             "".join(f"<p class='failed'>{e(n)}</p>" for n in notes),
             "<ul>" + "".join(f"<li><b>{e(x.name)}</b>: {e(settings_line(x))}. Explore its code space in the browser: "
                              f"<code>{e(explore_command(x))}</code></li>" for x in entries) + "</ul>",
             "<h2>What the models optimise</h2><div class='theory'>"]
    for heading, paragraphs in _theory(entries):
        parts.append(f"<h3>{e(heading)}</h3>" + "".join(f"<p>{e(p)}</p>" for p in paragraphs))
    parts.append("</div><h2>Figures</h2>")
    for d in overview:
        parts.append(f"<h3>{e(d.title)}</h3><p class='caption'>{e(d.caption)}</p>"
                     f"<figure class='wide'><img src='{_img(d.path)}' alt='{e(d.key)}'></figure>")
    for key, title, caption, group in _figure_groups(entries):
        # one figure alone takes half the width; wide ones (learning curves) go two to a row
        columns = min(max(len(group), 2), 4 if _aspect(group[0][1].path) < 1.8 else 2)
        parts.append(f"<h3>{e(title)}</h3><p class='caption'>{e(caption)}</p>"
                     f"<div class='row' style='grid-template-columns:repeat({columns},minmax(0,1fr))'>")
        for x, d in group:
            parts.append(f"<figure><img src='{_img(d.path)}' alt='{e(key)} of {e(x.name)}'>"
                         f"<figcaption><b>{e(x.name)}</b>: {e(settings_line(x))}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(title: str, question: str, entries: list[Entry], overview: list["Drawn"], stamp: str,
                    out: Path, notes: list[str] = ()) -> str:
    head, rows = table_rows(entries)
    lines = [f"# {title}", "", question, "", f"_{stamp}_", "", "## Test-set metrics", "",
             f"{UNITS}{_k_note(entries)}.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
             *["| " + " | ".join(r) + " |" for r in rows], "",
             *[f"**{n}**\n" for n in notes],
             *[f"- **{x.name}**: {settings_line(x)}. Explore its code space in the browser: `{explore_command(x)}`"
               for x in entries], "", "## What the models optimise", ""]
    for heading, paragraphs in _theory(entries):
        lines += [f"### {heading}", "", *[p + "\n" for p in paragraphs]]
    lines += ["## Figures", ""]
    for d in overview:
        lines += [f"### {d.title}", "", d.caption, "", f"![{d.key}]({d.path.relative_to(out).as_posix()})", ""]
    for key, title, caption, group in _figure_groups(entries):
        lines += [f"### {title}", "", caption, ""]
        for x, d in group:
            lines += [f"**{x.name}** ({settings_line(x)})", "", f"![{key} of {x.name}]({d.path.relative_to(out).as_posix()})", ""]
    return "\n".join(lines)


def _failures(failed: dict[str, str]) -> list[str]:
    return [f"{name} did not finish and is not in the table: {reason}" for name, reason in failed.items()]


def write(out: Path, title: str, question: str, entries: list[Entry], overview: list["Drawn"] = (),
          failed: dict[str, str] | None = None) -> Path:
    """DIR/report.html and DIR/report.md from entries (and overview figures drawn from all
    runs) whose figures lie under DIR; `failed` names runs that did not finish, with why."""
    stamp = f"Made {time.strftime('%Y-%m-%d %H:%M')} by aelab from {len(entries)} run(s)."
    notes = _failures(failed or {})
    write_atomic(out / "report.md", render_markdown(title, question, entries, list(overview), stamp, out, notes).encode())
    path = out / "report.html"
    write_atomic(path, render_html(title, question, entries, list(overview), stamp, notes).encode())
    return path
