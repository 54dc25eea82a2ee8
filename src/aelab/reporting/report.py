"""Reports: metrics as text for the terminal, and what the report says of each run (its row of
metrics, its settings line, its figures by kind, the theory of its parts). layout.py lays
these out as the report; document.py renders it as HTML and Markdown.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aelab import config
from aelab.config import RunConfig
from aelab.language import N_, join
from aelab.reporting import theory
from aelab.settings import value_text
from aelab.runs.rundir import UNITS

if TYPE_CHECKING:
    from aelab.reporting.figures import Drawn

# key -> (label, unit, format)
METRICS = {
    "loss": (N_("training objective"), N_("nats/image"), ".2f"),
    "neg_elbo": (N_("negative ELBO"), N_("nats/image"), ".2f"),
    "nll_is": (N_("NLL, importance sampled"), N_("nats/image"), ".2f"),
    "recon_nats": (N_("reconstruction term -log p(x|z)"), N_("nats/image"), ".2f"),
    "kl": (N_("KL(q(z|x) || p(z))"), N_("nats/image"), ".2f"),
    "mse": (N_("reconstruction MSE"), N_("per pixel"), ".5f"),
    "psnr_db": (N_("reconstruction PSNR"), N_("dB"), ".2f"),
    "ssim": (N_("reconstruction SSIM"), "", ".4f"),
    "psnr_train_sigma_db": (N_("PSNR with channel noise at the training sigma"), N_("dB"), ".2f"),
    "ssim_train_sigma": (N_("SSIM with channel noise at the training sigma"), "", ".4f"),
    "psnr_noisy_db": (N_("PSNR of the noisy input"), N_("dB"), ".2f"),
    "psnr_denoised_db": (N_("PSNR of the denoised output"), N_("dB"), ".2f"),
    "active_units": (N_("active units (Var E[z|x] > 0.01)"), N_("dims"), "d"),
    "active_units_z1": (N_("active units of the first stochastic layer z₁"), N_("dims"), "d"),
    "active_units_z2": (N_("active units of the second stochastic layer z₂"), N_("dims"), "d"),
    "codebook_usage": (N_("share of the codebook the test codes use"), "", ".4f"),
    "codebook_perplexity": (N_("perplexity of the codebook choices"), N_("vectors (at most K)"), ".1f"),
    "code_bits": (N_("rate of the test codes under the fitted prior"), N_("bits/image"), ".1f"),
    "code_bits_per_dim": (N_("rate of the test codes per image dimension"), N_("bits/dim"), ".4f"),
    "probe_acc": (N_("linear probe accuracy on codes"), "", ".4f"),
    "cond_acc": (N_("samples classified as their label"), "", ".4f"),
    "sample_class_entropy": (N_("class entropy of prior samples"), N_("nats (at most log C, C classes)"), ".3f"),
    "fd_classifier": (N_("Frechet distance, classifier features"), N_("not Inception FID"), ".2f"),
    "classifier_test_acc": (N_("reference classifier test accuracy"), "", ".4f"),
}
COLUMNS = ["neg_elbo", "nll_is", "recon_nats", "kl", "mse", "psnr_db", "ssim", "psnr_train_sigma_db", "ssim_train_sigma",
           "psnr_noisy_db", "psnr_denoised_db",
           "active_units", "active_units_z1", "active_units_z2", "codebook_usage", "codebook_perplexity", "code_bits",
           "code_bits_per_dim", "probe_acc", "cond_acc", "sample_class_entropy", "fd_classifier"]
SAMPLE_SCORES = {"cond_acc", "sample_class_entropy", "fd_classifier"}  # over `samples_judged` prior samples
# settings of how a run is computed, not of what it is: not columns of the comparison, nor rows of the hyperparameters
IGNORED_DIFFERENCES = {"train.device", "train.threads", "train.log_every", "train.eval_batch_size", "train.eval_precision",
                       "train.tensorboard"}


def metrics_text(record: dict) -> str:
    head = (f"{record['run']}: {record['kind']} on {record['dataset']} (binarize={record['binarize']}), "
            f"{record.get('test_folder', record['split'] + ' set')} of {record['n_images']} images, "
            f"{record['checkpoint']} of epoch {record['epoch']}"
            + (f", channel noise sigma {record['latent_sigma']:g}" if "latent_sigma" in record else ""))
    rows = []
    for key, (label, unit, fmt) in METRICS.items():
        if key in record:
            extra = (f" (K={record['nll_k']})" if key == "nll_is" else
                     f" (N={record['samples_judged']})" if key in SAMPLE_SCORES and "samples_judged" in record else "")
            rows.append((f"{label}{extra}", format(record[key], fmt), unit))
    width = max([42] + [len(label) for label, _, _ in rows])  # the values in one column, however long a label
    lines = [head] + [f"  {label:<{width}} {value:>10}  {unit}" for label, value, unit in rows]
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
    published: dict[str, float] = field(default_factory=dict)  # metric -> a paper's number for this run (a study's)

    @property
    def train_seconds(self) -> float | None:
        return self.done.get("train_seconds")


def _cell(value, fmt: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, fmt) if fmt else (f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}")
    return str(value)


def metric_cell(e: Entry, key: str) -> str:
    """Metric `key` of run `e` as the report's tables show it ('-' where the run has none)."""
    value = e.record.get(key)
    return _cell(value, METRICS[key][2] if isinstance(value, float) else "")


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
    return {N_("train s"): train_s, N_("eval s"): f"{eval_s:.1f}", N_("figures s"): f"{entry.draw_seconds:.1f}"}


def table_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """The comparison table: name, the settings that differ, epoch, metrics, seconds."""
    keys = varied_keys([e.cfg for e in entries])
    metrics = metric_columns([c for c in COLUMNS if any(c in e.record for e in entries)], entries)
    epochs = epoch_columns(entries)
    head = [N_("run"), *map(config.short_key, keys), *[head for head, _ in epochs],
            *[head for head, _ in metrics], N_("train s"), N_("eval s"), N_("figures s")]
    rows = []
    for e in entries:
        settings = _flat(e.cfg)
        row = [e.name, *[value_text(settings[k]) if k in settings else "-" for k in keys]]
        row += [cell(e) for _, cell in epochs + metrics]
        rows.append(row + list(_seconds(e).values()))
    return head, rows


def paper_epochs(entries: list[Entry]) -> bool:
    """Whether a study gives, for any of its runs, the passes its paper trained for."""
    return any("epoch" in e.published for e in entries)


def epoch_columns(entries: list[Entry]) -> list[tuple[str, Callable[[Entry], str]]]:
    """The run's epoch, and beside it its paper's passes where a study gives them for any run."""
    columns: list[tuple[str, Callable[[Entry], str]]] = [(N_("epoch"), lambda e: _cell(e.record.get("epoch")))]
    if paper_epochs(entries):
        columns.append((N_("{metric} published", metric="epoch"), lambda e: _cell(e.published.get("epoch"), "g")))
    return columns


def metric_columns(keys: list[str], entries: list[Entry]) -> list[tuple[str, Callable[[Entry], str]]]:
    """(header, cell of an entry) for each metric of `keys`, and beside it the published number
    where a study gives one for any of the runs."""
    published = {m for e in entries for m in e.published}
    columns: list[tuple[str, Callable[[Entry], str]]] = []
    for m in keys:
        columns.append((m, lambda e, m=m: metric_cell(e, m)))
        if m in published:
            columns.append((N_("{metric} published", metric=m), lambda e, m=m: _cell(e.published.get(m), METRICS[m][2])))
    return columns


def table_text(entries: list[Entry]) -> str:
    head, rows = table_rows(entries)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(head, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join([f"Test set ({UNITS}{_k_note(entries)}):", *lines])


def _k_note(entries: list[Entry]) -> str:
    ks = sorted({e.record["nll_k"] for e in entries if "nll_k" in e.record})
    return N_("; nll_is with K={k} importance samples", k="/".join(map(str, ks))) if ks else ""


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
        return "" if p in ("float32", "auto") else N_("{precision} training", precision=p)
    ways = dict.fromkeys(N_("{precision} on {device} x {n} processes", precision=r["precision"], device=r["device"],
                            n=r["processes"]) if r.get("processes", 1) > 1 else
                         N_("{precision} on {device}", precision=r["precision"], device=r["device"]) for r in e.training)
    then = N_(" then ")  # (Babel does not extract a message nested in another's arguments)
    return N_("trained in {ways}", ways=join(then, ways))


def _length(e: Entry) -> str:
    """'10 epochs', or a budgeted run's budget and the epochs it reached."""
    t = e.cfg.train
    if not t.time_budget_min:
        return N_("{n} epochs", n=t.epochs)
    reached = e.done.get("epochs_reached")
    if reached is None:
        return N_("{minutes:g}-minute budget", minutes=t.time_budget_min)
    return N_("{minutes:g}-minute budget ({reached:g} epochs reached)", minutes=t.time_budget_min, reached=reached)


def data_line(e: Entry) -> str:
    """'mnist (dynamic binarisation)', 'folder dogs64/train at 64x64': what the run trained on."""
    d = e.cfg.data
    what = (N_("folder {root} at {size}x{size}", root="/".join(Path(d.root).parts[-2:]), size=d.image_size)
            if d.name == "folder" else d.name)
    return N_("{data} ({binarize} binarisation)", data=what, binarize=d.binarize) if d.binarize != "none" else what


def settings_line(e: Entry) -> str:
    t = e.cfg.train
    training = join(", ", [_length(e), N_("batch {n}", n=t.batch_size), N_("lr {lr:g}", lr=t.lr),
                           N_("weight decay {wd:g}", wd=t.weight_decay) if t.weight_decay else "",
                           N_("{schedule} lr", schedule=t.lr_schedule) if t.lr_schedule != "constant" else "",
                           _trained_on(e), N_("seed {seed}", seed=t.seed)])
    return join("; ", [e.cfg.model.describe(), data_line(e), training])



def explore_command(e: Entry) -> str:
    """The command that opens the run's latent-space explorer (explore.py)."""
    return shlex.join(["aelab", "explore", str(e.metrics_path.parent)])
