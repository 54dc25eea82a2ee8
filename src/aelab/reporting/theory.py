"""The theory sections of a report: each part's own (its settings' `theory()`, beside the part),
gathered from the runs' configs with the model kinds first; a user's part that gives none
named in a line of its own; then what training adds (weight decay, time budgets) and the units.
Each section is (heading, paragraphs), every string an N_ Text (aelab/language.py) that the
report translates; a user's part may give plain str.
"""

from __future__ import annotations

from aelab.language import N_

WEIGHT_DECAY = (N_("L2 regularisation"), [
    N_("Weight decay λ adds λ/2 ‖θ‖² to the loss (with Adam, λθ to every gradient), keeping weights small. "
    "The loss here is summed over pixels, so λ is set against a loss of about a hundred nats per image."),
])


TIME_BUDGET = (N_("Training for minutes, not epochs"), [
    N_("A run with train.time_budget_min stops after that many minutes of training steps, and its cosine "
    "schedule follows the share of the minutes spent, so it ends at lr_min on a slow laptop and on a GPU "
    "alike. Within fixed minutes the question is what buys the most learning per second. On a CPU a "
    "convolution costs about as much per image at batch 16 as at batch 64, so the smaller batch makes four "
    "times the updates in the same time (docs/experiments/dogs.md measures it for the dogs model). A GPU "
    "runs a small batch far below its capacity; there a larger batch may buy more."),
])


CONVENTION = (N_("Units"), [
    N_("Every loss is summed over the pixels of an image and averaged over images: nats per image. "
    "mse is per pixel on [0, 1] images; PSNR = 10 log10(1 / mse) in dB; SSIM on the same reconstructions."),
])


FIRST = ("latent", "condition")  # the model's kind leads: AE, VAE, conditioning


def own_part(part) -> list[tuple[str, list[str]]]:
    """The line a report gives a user's part (userparts.py) that gives no theory of its own."""
    if ":" not in part.name:
        return []
    return [(N_("{title}, a {slot} of your own", title=part.title, slot=part.slot), [
        N_("{title} ({file}) is a {slot} part written outside aelab. Its settings class gives no theory: a "
           "theory(model) method returning (heading, paragraphs) puts its maths and citation here.",
           title=part.title, file=part.name.rpartition(":")[0], slot=part.slot)])]


def sections(cfgs) -> list[tuple[str, list[str]]]:
    """The theory sections of every part the runs use (the model kinds first, in the runs'
    order), weight decay and time budgets where a run has them, then the units."""
    found: dict[str, tuple[str, list[str]]] = {}
    for first in (True, False):
        for cfg in cfgs:
            for part in cfg.model.parts():
                if (part.slot in FIRST) == first:
                    said = part.theory(cfg.model) or own_part(part)
                    found.update({heading: (heading, text) for heading, text in said if heading not in found})
    if any(c.train.weight_decay > 0 for c in cfgs):
        found[WEIGHT_DECAY[0]] = WEIGHT_DECAY
    if any(c.train.time_budget_min > 0 for c in cfgs):
        found[TIME_BUDGET[0]] = TIME_BUDGET
    return [*found.values(), CONVENTION]
