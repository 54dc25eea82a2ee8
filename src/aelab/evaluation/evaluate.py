"""Test-set evaluation of a trained run. The test split is used here and nowhere else.

`aelab eval` measures everything that applies to the model (metrics.py); the summary that
`aelab train` prints at the end is the cheap part (`deep=False`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
import hashlib
import math
import time

import torch

from aelab import hardware, registry
from aelab.data.splits import ImageData, Split
from aelab.errors import AelabError, pick
from aelab.evaluation import classifier, pace
from aelab.evaluation.metrics import (
    active_units,
    denoising_quality,
    features,
    nll_importance_sampled,
    posterior_means,
    probe_accuracy,
    reconstruction_quality,
    sample_scores,
)
from aelab.parts.autoencoder import Autoencoder
from aelab.runs import tensorboard
from aelab.runs.losses import mean_loss_parts
from aelab.runs.rundir import UNITS, RunDir

EVAL_SEED = 1234  # the noise of z ~ q(z|x), of input corruption and of prior samples
DEFAULT_K = 100  # importance samples of nll_is where a cached evaluation is asked for without K
PROBE_SEED = 3  # the one draw of dynamically binarised training images for the probe

# loss-dict key -> the name it is reported under
NAMES = {"loss": "loss", "recon": "recon_nats", "kl": "kl", "neg_elbo": "neg_elbo"}


def loss_parts(model: Autoencoder, data: ImageData, batch_size: int = 1000) -> dict[str, float]:
    """Each part of `model.loss` averaged over the test images, with the KL at full weight."""
    return _named(mean_loss_parts(model, data.eval_batches(data.test, batch_size), len(data.test)))


def _named(parts: dict[str, float]) -> dict[str, float]:
    return {NAMES[k]: v for k, v in parts.items() if k in NAMES}


def loss_parts_and_codes(model: Autoencoder, data: ImageData, batch_size: int = 1000) -> tuple[dict, list | None]:
    """loss_parts, and the test images' codes E[z|x] batch by batch as the loss's own encoding
    computed them, so that they need no second pass. The codes are kept only where the loss
    encoded each batch's images once and as they are (`model.encode(batch.x, ...)`: not a
    denoising model's corrupted input, nor an objective of a user's that encodes a copy or
    encodes twice); else they are None, and the caller encodes the images itself."""
    encode, seen, now = model.encode, [], {}
    # the model's own encode, seen through for this pass on this instance (not where the
    # instance has its own `encode`, an attribute or a submodule of that name)
    watch = "encode" not in vars(model) and "encode" not in model._modules

    def recording(x, y=None):
        q = encode(x, y)
        if x is now.get("x"):  # the batch's own images (a VampPrior's encoding of its pseudo-inputs is not)
            now["mean"] = q.mean if "mean" not in now else None
        return q

    def batches():
        for batch in data.eval_batches(data.test, batch_size):
            now.clear()
            now["x"] = batch.x
            yield batch  # model.loss(batch) runs here
            seen.append(now.get("mean"))

    if watch:
        model.encode = recording
    try:
        parts = mean_loss_parts(model, batches(), len(data.test))
    finally:
        if watch:
            del model.encode
    codes = seen if watch and seen and all(z is not None for z in seen) else None
    return _named(parts), codes


CHANNEL_SIGMAS = (0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3)  # evaluation noise levels of the PSNR curve


@torch.no_grad()
def channel_quality(model: Autoencoder, batches, curve=contextlib.nullcontext, codes: list | None = None,
                    clean: dict | None = None) -> dict:
    """For a model with a noisy channel: PSNR and SSIM with the channel's noise at its training
    sigma, and the PSNR (and SSIM) at each of CHANNEL_SIGMAS. `batches` is a function giving
    the test batches; `codes`, their codes E[z|x] batch by batch where they are known already
    (else each image is encoded here, once); `clean`, the image quality at sigma 0 where it is
    known. Each code is decoded at every sigma, sigma by sigma as the noise was always drawn;
    the decodings at the other sigmas than the training one run in the context `curve()` makes
    (pace.py: bfloat16 where the hardware has it). The evaluation noise is put back afterwards."""
    channel = model.channel
    sigmas = sorted({*CHANNEL_SIGMAS, channel.sigma})
    codes = codes if codes is not None else [model.encode(b.x, b.y).mean for b in batches()]
    quality = {0.0: clean} if clean is not None else {}
    for sigma in sigmas:
        if sigma in quality:
            continue
        with channel.noise_at(sigma), contextlib.nullcontext() if sigma == channel.sigma else curve():
            quality[sigma] = reconstruction_quality((model.decode_mean(z, b.y), b.x) for z, b in zip(codes, batches()))
    return {"psnr_train_sigma_db": quality[channel.sigma]["psnr_db"], "ssim_train_sigma": quality[channel.sigma]["ssim"],
            "channel_sigmas": sigmas, "channel_psnr_db": [quality[v]["psnr_db"] for v in sigmas],
            "channel_ssim": [quality[v]["ssim"] for v in sigmas]}


def load_model(run: RunDir, which: str = "best"):
    """(model, cfg, payload) of a run's checkpoint `which`: RunDir.model."""
    return run.model(which)


def measure(model: Autoencoder, data: ImageData, cfg, *, k: int = 1000, deep: bool = True,
            judging: classifier.Judging | None = None, split: str = "test") -> dict:
    """All metrics that apply to `model` on the test split (see metrics.py); with deep=False
    only the loss parts and image quality. Adds `seconds` per group of metrics. `judging`: how
    samples are judged (default: the real reference classifier, or what $AELAB_JUDGING sets).
    With split "val", every metric is of the validation split instead, samples held against
    its images: the test split is not read (what a search selects on, tune.py)."""
    judging = judging or classifier.Judging.from_env()
    if split == "val":
        if len(data.val) == 0:
            raise AelabError("data.val_size: 0; there is no validation split to measure on")
        data = dataclasses.replace(data, test=data.val)
    bs = hardware.eval_batch(data.image_shape, cfg.train.eval_batch_size)
    precision = hardware.precision(cfg.train.eval_precision, data.device)
    test = lambda: data.eval_batches(data.test, bs)  # noqa: E731
    stochastic = model.latent.stochastic
    out: dict = {"eval_precision": precision, "eval_batch_size": bs}
    timings: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        with pace.forward(name, precision, data.device):
            result = fn()
        timings[name] = round(time.perf_counter() - start, 2)
        return result

    with torch.no_grad(), torch.random.fork_rng(devices=[data.device] if data.device.type == "cuda" else []):
        torch.manual_seed(EVAL_SEED)
        parts, coded = timed("loss", lambda: loss_parts_and_codes(model, data, bs))
        out.update(parts)
        # the test codes E[z|x] for the reconstructions, the channel's decodings and the code
        # metrics: those of the loss's pass (both run in float32, pace.py), or encoded here
        # (no draw: the seeded stream is untouched)
        if coded is None or pace.runs_apart("codes_test", "loss", precision):
            coded = timed("codes_test", lambda: [model.encode(b.x, b.y).mean for b in test()])
        quality = timed("image_quality", lambda: reconstruction_quality(
            (model.decode_mean(z, b.y), b.x) for z, b in zip(coded, test())))
        out.update(quality)
        if model.corruption.active:
            out.update(timed("denoising", lambda: denoising_quality(model, test())))
        if model.channel.active:
            curve = lambda: pace.forward("channel_curve", precision, data.device)  # noqa: E731
            clean = quality if model.channel.eval_sigma == 0 else None  # not under `aelab eval --latent-sigma`
            out.update(timed("channel", lambda: channel_quality(model, test, curve, coded, clean)))
        if not deep:
            return {**out, "seconds": timings}
        # a student's skeleton whose q(z|x) is not the Gaussian aelab would weigh says why (course/model.py)
        if stochastic and model.latent.why_no_nll:
            out["nll_is_absent"] = model.latent.why_no_nll
        elif stochastic:
            out["nll_is"] = timed("nll_is", lambda: nll_importance_sampled(model, test(), k))
            out["nll_k"] = k
        codes, labels = torch.cat([z.double().cpu() for z in coded]), data.test.labels.cpu()  # the batches' order
        out.update(model.latent.usage(codes, math.prod(data.image_shape)))  # a codebook: how much of it is used
        if stochastic:
            out["active_units"] = active_units(codes)
            for layer, dims in model.latent.layers.items():  # two stochastic layers: each its own
                out[f"active_units_{layer}"] = active_units(codes[:, dims])
        if data.num_classes > 1:  # a single-class folder has no labels to read off the codes
            # The training images as the encoder saw them (a dynamic binarisation drawn once, seeded).
            train = Split(data.binarizer.once(data.train.images, PROBE_SEED), data.train.labels)
            train_codes, train_labels = timed("codes_train", lambda: posterior_means(model, data.eval_batches(train, bs)))
            out["probe_acc"] = timed("probe", lambda: probe_accuracy(train_codes, train_labels, codes, labels))
        if classifier.judges(data.image_shape, data.num_classes):  # MNIST-like digits: samples are judged
            arrays = pick(registry.DATASETS, "data.name", cfg.data.name)(cfg.data)
            judge, judge_acc = timed("classifier", lambda: classifier.reference_classifier(arrays, cfg.data.name,
                                                                                             judging.classifier))
            # Samples are the likelihood's means (grey levels), so they are held against the grey
            # test images, the kind of image the classifier was trained on.
            grey = Split(torch.from_numpy(_grey(arrays, split, len(data.test)).copy()).unsqueeze(1).to(data.device),
                         data.test.labels)
            reference = lambda: features(judge.to(data.device), data.eval_batches(grey, bs))  # noqa: E731
            # the test images' features: computed once per machine and classifier (kept beside it), shared by every run
            test_feats = (lambda: classifier.test_features(arrays, cfg.data.name, reference, judging.classifier)) \
                if split == "test" else reference
            out.update(timed("samples", lambda: sample_scores(model, judge, None, n=judging.samples,
                                                              test_features=test_feats())))
            out["samples_judged"] = judging.samples
            out["classifier_test_acc"] = judge_acc
    return {**out, "seconds": timings}


def _grey(arrays, split: str, n: int):
    """The grey-level images of `split` as the arrays hold them: the test images, or the
    validation split, the last `n` training images (ImageData.from_arrays holds them out there)."""
    return arrays.test_images if split == "test" else arrays.train_images[len(arrays.train_images) - n:]


@dataclass(frozen=True)
class Target:
    """What an evaluation measures besides the run itself: the split ("test", or "val" for a
    search's choices), the channel's noise at evaluation, another image folder as the test set."""

    split: str = "test"
    latent_sigma: float | None = None
    test_folder: str | None = None


def evaluate_run(run: RunDir, data: ImageData | None = None, *, k: int = 1000, deep: bool = True,
                 judging: classifier.Judging | None = None, target: Target = Target()) -> dict:
    """Test metrics of the run's best checkpoint, written to RUN/eval.json and returned.
    `judging`: how samples are judged (default: the real reference classifier, 10,000 samples,
    or what $AELAB_JUDGING sets). `target.split` "val" measures the validation split instead,
    written to RUN/eval_val.json.
    `target.test_folder` measures a model trained on an image folder on another folder (same
    preprocessing); `target.latent_sigma` sets the channel's noise at evaluation. Either one makes
    a measurement of something else than the run's own test set, so it is returned, not written."""
    latent_sigma, test_folder = target.latent_sigma, target.test_folder
    model, cfg, payload = run.model("best")
    if latent_sigma is not None:
        if not model.channel.active:
            raise AelabError(f"--latent-sigma: the model of {run.path} has no channel to add noise to "
                             f"(model.channel.name = {cfg.model.channel.name!r})")
    if test_folder is not None:
        if cfg.data.name != "folder":
            raise AelabError(f"--test-folder: {run.path} was trained on {cfg.data.name!r}, not on an image folder")
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_root=str(test_folder), test_fraction=0.0))
        data = None
    data = (data if data is not None else registry.build_data(cfg)).to(hardware.device(cfg.train.device))
    noise = model.channel.noise_at(latent_sigma) if latent_sigma is not None else contextlib.nullcontext()
    with noise:
        measured = measure(model, data, cfg, k=k, deep=deep, judging=judging, split=target.split)
    record = {
        "run": str(run.path),
        "kind": cfg.model.short.lower(),
        "dataset": cfg.data.name,
        "binarize": cfg.data.binarize,
        "split": target.split,
        **({"test_folder": str(test_folder)} if test_folder is not None else {}),
        **({"latent_sigma": latent_sigma} if latent_sigma is not None else {}),
        "n_images": len(data.test if target.split == "test" else data.val),
        "checkpoint": "best.pt",
        "checkpoint_sha256": _sha256(run.best_path),
        "epoch": int(payload["epoch"]),
        "deep": deep,
        **{key: round(v, 6) if isinstance(v, float) else v for key, v in measured.items()},
        "units": UNITS + "; psnr_db, ssim of reconstructions at the posterior mean; "
                 "fd_classifier is in the reference classifier's features, not comparable with Inception FID",
    }
    if latent_sigma is None and test_folder is None:
        run.write_json(run.evaluation_path(target.split), record)
        if cfg.train.tensorboard and target.split == "test":
            step = int(payload["epoch"]) * data.steps_per_epoch(cfg.train.batch_size)
            tensorboard.write_results(run.path, cfg, record, step)
    return record


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_or_evaluate(run: RunDir, data: ImageData | None = None, *, k: int | None = None, deep: bool = True,
                       judging: classifier.Judging | None = None, split: str = "test") -> dict:
    """RUN/eval.json (eval_val.json for split "val") if it measured the current best.pt at least
    this deeply (and with K importance samples, where k is given), else a fresh evaluation
    (with K = k or DEFAULT_K)."""
    if run.evaluation_path(split).is_file():
        record = run.evaluation(split)
        if (record.get("checkpoint_sha256") == _sha256(run.best_path) and k in (None, record.get("nll_k", k))
                and (record.get("deep") or not deep)):
            return record
    return evaluate_run(run, data, k=k or DEFAULT_K, deep=deep, judging=judging, target=Target(split))
