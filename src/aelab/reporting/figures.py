"""What to draw for a run: every figure that applies to its model, as PNG files.

Which figures apply follows from the model's parts, not its kind's name: a label grid for
a conditioned model, a manifold for a 2-D latent, a strip for a 1-D one, traversals beyond,
denoising triplets where the input is corrupted. Every figure is drawn from fixed test
indices and fixed seeds, so the same figure of two runs can be set side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from aelab.data.splits import ImageData
from aelab.language import N_, Language
from aelab.parts.autoencoder import Autoencoder
from aelab.reporting import codespace, fonts, plots
from aelab.reporting.figure_data import (
    FIGURE_SEED,
    SHOWN,
    FigureOptions,
    Subject,
    cond,
    fixed_indices,
    randn,
    random_indices,
    shown_images,
    test_images,
)
from aelab.runs.rundir import read_metrics

SCATTER_POINTS = 2000  # test codes in the t-SNE scatter (t-SNE is quadratic-ish in N)
TRAVERSED_DIMS = 8


# figure key -> the heading a report gives it
TITLES = {
    "compare_curves": N_("Learning curves of all runs"), "curves": N_("Learning curves"),
    "reconstructions": N_("Reconstructions"), "samples": N_("Samples from the prior"),
    "label_grid": N_("Label-conditioned samples"), "manifold": N_("Latent manifold (uniform grid)"),
    "manifold_quantiles": N_("Latent manifold (quantile grid)"), "strip": N_("1-D latent strip"),
    "traversals": N_("Latent traversals"), "scatter": N_("Latent space by class"), "tsne": N_("t-SNE of the codes"),
    "interpolation": N_("Interpolation"), "denoising": N_("Denoising"),
    "gaussian_samples": N_("Sampling a Gaussian fitted to the codes"), "code_noise": N_("Noise on the codes"),
    "code_maps": N_("Code maps"), "channel_curves": N_("PSNR against channel noise"),
    "tune_history": N_("Search: optimisation history"), "tune_pareto": N_("Search: Pareto front"),
    "tune_importance": N_("Search: importance of each setting"),
}


@dataclass(frozen=True)
class Drawn:
    key: str  # the kind of figure: the same key in two runs means comparable figures
    path: Path
    caption: str

    @property
    def title(self) -> str:
        return TITLES.get(self.key, self.key)


def _examples(data: ImageData, per_class: int) -> tuple[torch.Tensor, bool]:
    """Test indices to show and whether they go class by class: the first `per_class` of each
    class where there are classes, else SHOWN x per_class images drawn once with the figure seed."""
    if data.num_classes >= 2:
        return fixed_indices(data.test.labels, per_class, data.num_classes), True
    return random_indices(len(data.test), SHOWN * per_class), False


def reconstructions(s: Subject):
    model, data, names, tr = s.model, s.data, s.names, s.tr
    title, test, recon = tr(N_("Test images and their reconstructions")), tr(N_("test")), tr(N_("recon."))
    if data.num_classes < 2:  # no classes: SHOWN test images drawn once
        x, y = shown_images(data)
        return plots.image_rows([x, model.reconstruct(x, cond(model, y))], [test, recon], title)
    idx = fixed_indices(data.test.labels, 2, data.num_classes)
    x, y = test_images(data, idx)
    r = model.reconstruct(x, cond(model, y))
    half = len(idx) // 2
    rows = [x[0::2], r[0::2], x[1::2], r[1::2]] if len(idx) == 2 * half else [x, r]
    return plots.image_rows(rows, [test, recon, test, recon][:len(rows)], title,
                            col_labels=[names[int(c)] for c in y[0::2]])


def prior_samples(s: Subject):
    model, data = s.model, s.data
    y = model.condition.default_labels(64, data.device)
    z = model.prior_draw(randn(64, model.latent_dim, data.device), y, torch.Generator().manual_seed(FIGURE_SEED))
    images = model.decode_mean(z, y)
    title = (N_("Decoded from z ~ {prior} (labels 0-{last} in turn)", prior=model.prior.symbol, last=model.condition.dim - 1)
             if y is not None else N_("Decoded from z ~ {prior}", prior=model.prior.symbol))
    return plots.image_grid(images, 8, s.tr(title))


def label_grid(s: Subject):
    model, data, names = s.model, s.data, s.names
    c = model.condition.dim
    eps = randn(10, model.latent_dim, data.device).repeat(c, 1)  # column j: the same eps_j in every row
    y = torch.arange(c, device=data.device).repeat_interleave(10)
    images = model.decode_mean(model.prior_draw(eps, y, torch.Generator().manual_seed(FIGURE_SEED)), y)
    tr = s.tr
    return plots.image_grid(images, 10, tr(N_("Row: the label; column: one z ~ {prior} held fixed", prior=model.prior.symbol)),
                            row_labels=names[:c], axes=(tr(N_("z_1 ... z_10 (style)")), tr(N_("label"))))


def _decode_grid(model, data, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Decode z = (xs[j], ys[-1 - i]) for row i (top = largest z_2) and column j."""
    zy, zx = torch.meshgrid(ys.flip(0), xs, indexing="ij")
    z = torch.stack([zx.flatten(), zy.flatten()], 1).to(data.device)
    return model.decode_mean(z, None)


def _ticks(values: torch.Tensor) -> list[str]:
    return [f"{0.0 if abs(v) < 0.05 else v:.1f}" for v in values.tolist()]  # no "-0.0"


def _axes(s: Subject, a: float, n: int) -> tuple[list[torch.Tensor], str]:
    """n evenly spaced values per latent dimension, and where they span: [-a, a] where the
    codes were trained towards N(0, I); else (an AE's codes have no set scale) the 0.5-99.5th
    percentiles of the test codes."""
    if s.model.latent.stochastic:
        return [torch.linspace(-a, a, n)] * s.model.latent_dim, f"[-{a:g}, {a:g}]"
    lo, hi = torch.quantile(s.codes[0].float(), torch.tensor([0.005, 0.995]), dim=0)
    return [torch.linspace(l, h, n) for l, h in zip(lo.tolist(), hi.tolist())], N_("the test codes' range")


def manifold_uniform(s: Subject, a: float = 3.0, n: int = 15):
    (xs, ys), span = _axes(s, a, n)
    return plots.image_grid(_decode_grid(s.model, s.data, xs, ys), n, s.tr(N_("Decoded uniform grid over {span}", span=span)),
                            col_labels=_ticks(xs), row_labels=_ticks(ys.flip(0)), axes=("z_1", "z_2"),
                            cell=0.45)


def manifold_quantiles(s: Subject, n: int = 15):
    """The decoder at n evenly spaced quantiles per axis: of N(0, 1) where the codes were
    trained towards the prior, else of the test codes themselves (an AE's codes crowd near
    the origin with long arms, which a uniform grid spends most of its cells on)."""
    probs = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    if s.model.latent.stochastic:
        xs = ys = torch.distributions.Normal(0.0, 1.0).icdf(probs)
        title = N_("Decoded at Gaussian quantiles ({n} per axis)", n=n)
    else:
        xs, ys = (torch.quantile(s.codes[0][:, j].float(), probs) for j in range(2))
        title = N_("Decoded at the test codes' quantiles ({n} per axis)", n=n)
    return plots.image_grid(_decode_grid(s.model, s.data, xs, ys), n, s.tr(title),
                            col_labels=_ticks(xs), row_labels=_ticks(ys.flip(0)), axes=("z_1", "z_2"),
                            cell=0.45)


def strip(s: Subject, a: float = 3.0, n: int = 21):
    (axis,), span = _axes(s, a, n)
    images = s.model.decode_mean(axis.view(-1, 1).to(s.data.device), None)
    return plots.image_grid(images, n, s.tr(N_("The 1-D latent decoded over {span}", span=span)), col_labels=_ticks(axis),
                            axes=("z", ""), cell=0.55)


def _dimension(model, d: int) -> str:
    """A code dimension's name: z17, or channel and position in a code map (c13 y1 x1)."""
    shape = model.decoder.code_shape
    if shape is None:
        return f"z{d}"
    _, h, w = shape
    return f"c{d // (h * w)} y{d // w % h} x{d % w}"


def traversals(s: Subject, steps: int = 11, spread: float = 3.0):
    """Each row varies one of the most active dimensions across its test-set spread
    (mean +- 3 sd of the posterior means), the others held at their test-set mean."""
    model, data = s.model, s.data
    codes, _ = s.codes
    mean, sd = codes.mean(0), codes.std(0)
    dims = torch.argsort(codes.var(0), descending=True)[:TRAVERSED_DIMS]
    offsets = torch.linspace(-spread, spread, steps, dtype=codes.dtype)
    z = mean.repeat(len(dims) * steps, 1)
    for r, d in enumerate(dims):
        z[r * steps:(r + 1) * steps, d] = mean[d] + offsets * sd[d]
    y = model.condition.default_labels(1, data.device)
    y = None if y is None else y.repeat(len(z))  # a conditioned model: drawn as label 0
    images = model.decode_mean(z.float().to(data.device), y)
    rows = [f"{_dimension(model, int(d))} (sd {sd[d]:.2f})" for d in dims]
    title = (N_("Traversals of the most active dimensions, label 0") if y is not None else
             N_("Traversals of the most active dimensions"))
    return plots.image_grid(images, steps, s.tr(title), row_labels=rows,
                            col_labels=[f"{v:+.0f}" if v == int(v) else f"{v:+.1f}" for v in offsets.tolist()],
                            axes=(s.tr(N_("offset from the test-set mean, in sd of that dimension")), ""))


def scatter(s: Subject):
    names, tr = s.names, s.tr
    codes, labels = s.codes
    if codes.shape[1] == 2:
        return plots.scatter(codes.numpy(), labels.numpy(), tr(N_("Test codes E[z|x] ({n} images)", n=len(codes))),
                             "z_1", "z_2", names)
    centred = codes - codes.mean(0)
    _, sv, v = torch.linalg.svd(centred, full_matrices=False)
    explained = (sv ** 2 / (sv ** 2).sum())[:2]
    pcs = (centred @ v[:2].T).numpy()
    return plots.scatter(pcs, labels.numpy(),
                         tr(N_("Test codes E[z|x], first two principal components ({n} images)", n=len(codes))),
                         tr(N_("PC1 ({share:.0%} of variance)", share=float(explained[0]))),
                         f"PC2 ({explained[1]:.0%})", names)


def tsne(s: Subject):
    names = s.names
    from sklearn.manifold import TSNE  # only for codes of more than 2 dimensions

    codes, labels = s.codes
    codes, labels = codes[:SCATTER_POINTS], labels[:SCATTER_POINTS]
    # perplexity 30, or less where there are fewer codes (t-SNE needs it below their number)
    points = TSNE(2, init="pca", perplexity=min(30.0, len(codes) - 1.0), random_state=0).fit_transform(codes.numpy())
    return plots.scatter(points, labels.numpy(), s.tr(N_("t-SNE of the test codes E[z|x] (first {n} images)", n=len(codes))),
                         "t-SNE 1", "t-SNE 2", names)


def interpolations(s: Subject, steps: int = 10):
    """Straight lines in code space between pairs of test images. Unconditioned models go
    from digit c to digit c+1; a conditioned model between two images of the same digit,
    with that label held."""
    model, data, names = s.model, s.data, s.names
    idx, by_class = _examples(data, 2)
    first, second = idx[0::2], idx[1::2]
    a, b = (first[:6], second[:6]) if model.condition.dim or not by_class else (first[:6], first[1:7])
    ends = a[:len(b)], b[:len(a)]  # as many starts as ends (a folder of two classes has one pair c, c+1)
    xa, ya = test_images(data, ends[0])
    xb, _ = test_images(data, ends[1])
    za, zb = model.encode(xa, cond(model, ya)).mean, model.encode(xb, cond(model, ya)).mean
    t = torch.linspace(0, 1, steps, device=data.device).view(1, -1, 1)
    z = (za.unsqueeze(1) * (1 - t) + zb.unsqueeze(1) * t).flatten(0, 1)
    y = cond(model, ya.repeat_interleave(steps))
    images = model.decode_mean(z, y)
    tr = s.tr
    pairs = ([tr(N_("{a} to {b}", a=names[int(a)], b=names[int(b)])) for a, b in zip(ya, data.test.labels[ends[1].to(data.device)])]
             if by_class else [tr(N_("pair {i}", i=i + 1)) for i in range(len(ya))])
    return plots.image_grid(images, steps, tr(N_("Interpolation between the codes of two test images")), row_labels=pairs,
                            col_labels=[f"{v:.2f}" for v in t.flatten().tolist()], axes=(tr(N_("t in (1 - t) z_a + t z_b")), ""))


def denoising(s: Subject):
    model, data, names = s.model, s.data, s.names
    idx, by_class = _examples(data, 1)
    x, y = test_images(data, idx)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FIGURE_SEED)
        noisy = model.corruption(x.cpu()).to(data.device)
    tr = s.tr
    return plots.image_rows([x, noisy, model.reconstruct(noisy, cond(model, y))],
                            [tr(N_("clean")), tr(N_("noisy")), tr(N_("denoised"))],
                            tr(N_("Clean, corrupted, and reconstructed from the corrupted input")),
                            col_labels=[names[int(c)] for c in y] if by_class else None)


def _epochs(rows: list[dict]) -> list[float]:
    """Where each record sits on the epoch axis: a partial last epoch (a time budget ran out)
    at the epochs it reached."""
    return [r.get("reached", r["epoch"]) for r in rows]


SPLITS = {"train": lambda part: N_("train {part}", part=part), "val": lambda part: N_("val {part}", part=part)}
PARTS = {"loss": N_("loss"), "recon": N_("recon"), "kl": N_("kl")}  # a line's part, in the legend
PANELS = {"loss": N_("objective"), "recon": N_("reconstruction -log p(x|z)"), "kl": N_("KL(q(z|x) || p(z))")}


def learning_curves(metrics_path: Path, title: str, tr: Language):
    rows = read_metrics(metrics_path)
    epochs = _epochs(rows)
    dashed = set()

    def lines(part: str) -> dict:
        found = {}
        for split, label in SPLITS.items():
            if all(f"{split}_{part}" in r for r in rows):
                said = tr(label(PARTS[part]))
                found[said] = (epochs, [r[f"{split}_{part}"] for r in rows])
                if split == "val":
                    dashed.add(said)
        return found

    nats = tr(N_("nats / image"))
    panels = [(tr(PANELS["loss"]), nats, lines("loss")), (tr(PANELS["recon"]), nats, lines("recon"))]
    if all("train_kl" in r for r in rows):
        panels.append((tr(PANELS["kl"]), nats, lines("kl")))
    return plots.curves(panels, title, dashed=dashed, xlabel=tr(N_("epoch")))


# key -> (drawing function, applies to this model?, caption)
FIGURES = {
    "reconstructions": (reconstructions, lambda m: True,
                        N_("The first two test images of each class (without classes: 9 test images drawn once), the "
                        "same for every run, reconstructed at the posterior mean.")),
    "samples": (prior_samples, lambda m: True,
                N_("64 decodings of z drawn from the prior (N(0, I); the learned p(z | y) of a model that has one), "
                "seeded. An AE is not trained towards N(0, I), so its samples show what lies where no code landed.")),
    "label_grid": (label_grid, lambda m: m.condition.dim > 0,
                   N_("Row r is conditioned on class r; each column keeps one z fixed (under a learned p(z | y), one "
                   "standard normal draw eps, z = m_y + s_y eps), so style stays and the class changes.")),
    "manifold": (manifold_uniform, lambda m: m.latent_dim == 2 and m.condition.dim == 0,
                 N_("The decoder over a uniform grid of the 2-D latent space (the prior's [-3, 3]^2; for a "
                 "deterministic AE, the range its test codes span); axes give z.")),
    "manifold_quantiles": (manifold_quantiles, lambda m: m.latent_dim == 2 and m.condition.dim == 0,
                           N_("The decoder at evenly spaced quantiles on each axis: of N(0, 1) for a model with a prior "
                           "(each cell holds equal prior mass); for a deterministic AE, of its test codes (each row and "
                           "column holds an equal share of them).")),
    "strip": (strip, lambda m: m.latent_dim == 1 and m.condition.dim == 0,
              N_("The decoder along the 1-D latent ([-3, 3]; for a deterministic AE, the range its test codes span).")),
    "traversals": (traversals, lambda m: m.latent_dim > 2,
                   N_("One dimension varied at a time (the most active ones, by variance of E[z|x] over the test set).")),
    "scatter": (scatter, lambda m: m.latent_dim >= 2,
                N_("Posterior means of the test images, coloured by class (principal components beyond two dimensions).")),
    "tsne": (tsne, lambda m: m.latent_dim > 2, N_("t-SNE of the posterior means, coloured by class (seeded).")),
    "interpolation": (interpolations, lambda m: True,
                      N_("Decoded points on the straight line between two test images' codes.")),
    "denoising": (denoising, lambda m: m.corruption.active,
                  N_("The first test image of each class, corrupted as in training (seeded), then reconstructed.")),
    "gaussian_samples": (codespace.gaussian_samples, lambda m: not m.latent.stochastic,
                         N_("A Gaussian (mean and full covariance) fitted to the codes of the first training images: "
                            "{n} samples decoded; the same samples pulled toward real codes "
                            "(delta x sample + (1 - delta) x code, delta in the row's label); the real codes decoded; "
                            "the images. An AE's codes fill only part of the space a Gaussian spreads over.", n=SHOWN)),
    "code_noise": (codespace.code_noise, lambda m: not m.latent.stochastic,
                   N_("Test images' codes with Gaussian noise added (sd relative to each code's RMS), then decoded.")),
    "code_maps": (codespace.code_maps, lambda m: m.decoder.code_shape is not None,
                  N_("Each test image beside the channels of its code map (a channel's colours span its range over "
                  "the images shown; upsampled, nearest).")),
}


@torch.no_grad()
def draw_run(model: Autoencoder, data: ImageData, metrics_path: Path, out: Path, title: str,
             options: FigureOptions = FigureOptions(), lang: Language | None = None) -> list[Drawn]:
    """Every figure that applies to `model`, written to `out/KEY.png`, lettered in `lang`
    (default English; English where this machine has no font for it, fonts.py); classes are
    named as `data` names them."""
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    with fonts.lettered(lang) as tr:
        subject = Subject(model, data, list(data.class_names), options, tr)
        curves = learning_curves(metrics_path, tr(N_("Learning curves: {run}", run=title)), tr)
        drawn = [Drawn("curves", plots.save(curves, out / "curves.png"), N_(
            "Training (solid) and validation (dashed) loss per epoch, each part drawn separately; nats per image, "
            "summed over pixels. With KL annealing the training objective weights the KL as it was weighted then; "
            "validation always at full weight."))]
        for key, (fn, applies, caption) in FIGURES.items():
            if applies(model):
                drawn.append(Drawn(key, plots.save(fn(subject), out / f"{key}.png"), caption))
    return drawn


def comparison_curves(runs: dict[str, Path], path: Path, lang: Language | None = None) -> Drawn:
    """Every run's learning curves on shared axes (validation where a run has it, else training)."""
    with fonts.lettered(lang) as tr:
        return _comparison_curves(runs, path, tr)


def _comparison_curves(runs: dict[str, Path], path: Path, tr: Language) -> Drawn:
    panels = {part: (tr(title), {}) for part, title in PANELS.items()}
    colors = plots.palette(list(runs))
    trained = {n: tr(N_("{run} (train)", run=n)) for n in runs}
    colors.update({trained[n]: c for n, c in list(colors.items())})
    for name, metrics_path in runs.items():
        rows = read_metrics(metrics_path)
        for part, (_, lines) in panels.items():
            split = "val" if all(f"val_{part}" in r for r in rows) else "train"
            if all(f"{split}_{part}" in r for r in rows):
                lines[name if split == "val" else trained[name]] = (_epochs(rows), [r[f"{split}_{part}"] for r in rows])
    fig = plots.curves([(title, tr(N_("nats / image")), lines) for title, lines in panels.values() if lines],
                       tr(N_("All runs: validation loss per epoch (training loss where a run holds out no validation set)")),
                       colors, shared_legend=True, dashed=(), xlabel=tr(N_("epoch")))
    return Drawn("compare_curves", plots.save(fig, path), N_(
        "The runs' curves on shared axes; nats per image, summed over pixels. The objective and the reconstruction "
        "term of runs with different likelihoods or reductions differ by constants and scales: compare their "
        "shapes, and the KL."))
