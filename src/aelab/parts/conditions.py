"""Condition parts: what, besides x or z, the encoder and decoder are given.

A condition turns labels into a vector that the networks join to their inputs (CVAE: Sohn
et al. 2015), or into nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aelab.language import N_, join
from aelab.parts.slots import ConditionSettings
from aelab.settings import bounded

def condition(model) -> tuple[str, list[str]]:
    """The CVAE as `model` (a ModelConfig) builds it: its prior, its β, how loudly the label speaks."""
    learned = model.prior.per_label
    prior = N_("a prior learned per class, p(z | y) = N(m_y, diag s_y²)") if learned else N_("the prior p(z) = N(0, I)")
    p = "p(z | y)" if learned else "p(z)"
    beta = model.objective.beta
    scaled = N_(" scaled by {scale:g}", scale=model.condition.scale) if model.condition.scale != 1 else ""
    text = [
        N_("The label y joins the inputs of both networks as a one-hot vector{scaled}: q(z | x, y) and "
           "p(x | z, y), with {prior} (Sohn et al. 2015). It maximises "
           "ELBO(x | y) = E_q(z|x,y)[log p(x | z, y)] − {weight}KL(q(z | x, y) ‖ {p}).",
           scaled=scaled, prior=prior, weight="" if beta == 1 else "β · ", p=p),
        N_("The class need not be stored in z, so the code can carry style (slant, thickness) and a chosen y "
           "with z ~ {p} draws that class. Its NLL is −log p(x | y), which knows the label, so it is lower than "
           "an unconditioned model's −log p(x) and not directly comparable.", p=p),
    ]
    if beta != 1:
        text.append(N_("Here β = {beta:g}: the KL term weighs {beta:g} times what the ELBO gives it. Above 1 it makes "
                       "every nat that z carries about the image cost more, and the label, which the decoder is "
                       "given for free, is the first thing z stops carrying; the price is a looser bound (a higher "
                       "neg_elbo at the same fit).", beta=beta) if beta > 1 else
                    N_("Here β = {beta:g}: the KL term weighs {beta:g} times what the ELBO gives it. Below 1 the "
                       "code may carry more about each image than the prior allows for, at the price of samples "
                       "from the prior that look less like the data.", beta=beta))
    if not learned and model.condition.scale == 1 and beta == 1:
        text.append(N_("This is the textbook CVAE. Nothing in its objective stops z from also storing the class: "
                       "where it does, z ~ N(0, I) can carry another class's identity and the decoder draws that "
                       "class whatever y says; the classifier-judged share of samples that are their label "
                       "(cond_acc) measures how often."))
    return (N_("Conditioning on the label (CVAE)"), text)


def label_scale(scale: float) -> tuple[str, list[str]]:
    return (N_("How loudly the label speaks"), [
        N_("The label enters each network's first layer as a one-hot vector beside the image (encoder) or the "
           "code (decoder). The layer's weights start at one scale, so a code of D numbers, each about N(0, 1), "
           "moves the decoder's first layer about √D times as much as a one-hot of 1 does: early in training the "
           "decoder can learn the digit from z, and z goes on storing it."),
        N_("Here the one-hot is multiplied by s = {scale:g}, so that the label speaks as loudly from the first "
           "step. It is still the one-hot label into both networks; for a linear layer it is the same as starting "
           "the label's weights s times larger and, under Adam, moving them s times faster.", scale=scale),
    ])


class Unconditional:
    dim = 0

    def __init__(self, num_classes: int = 0):
        pass

    def __call__(self, y: torch.Tensor | None) -> None:
        return None

    def default_labels(self, n: int, device: torch.device) -> None:
        return None


class OneHotLabel:
    """The label as a one-hot vector of `num_classes`, times `scale`."""

    def __init__(self, num_classes: int, scale: float = 1.0):
        self.dim, self.scale = num_classes, scale

    def __call__(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this model is conditioned on labels: pass y")
        return F.one_hot(y, self.dim).float() * self.scale

    def default_labels(self, n: int, device: torch.device) -> torch.Tensor:
        """0, 1, ..., C-1, 0, 1, ...: every class in turn."""
        return torch.arange(n, device=device) % self.dim


@dataclass(frozen=True)
class NoConditionSettings(ConditionSettings):
    """[model.condition] name = "none": the networks are given x or z alone (no label)."""

    name = "none"
    prefix = ""

    def describe(self) -> str:
        return ""

    def build(self, num_classes: int) -> Unconditional:
        return Unconditional()


@dataclass(frozen=True)
class LabelSettings(ConditionSettings):
    """[model.condition] name = "label": both networks are given the one-hot label (a CVAE)."""

    name = "label"
    prefix = "C"  # a conditional AE or VAE: CAE, CVAE
    # the one-hot's value: 1 is the textbook; larger gives the label the weight in the networks'
    # first layers that a code of many N(0, 1) numbers has (see label_scale)
    scale: float = bounded(1.0, above=0.0)

    def describe(self) -> str:
        return join(", ", self.changed_words({"scale": N_("label one-hot x {scale:g}", scale=self.scale)}))  # CVAE: the model's name

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [condition(model)] + ([label_scale(self.scale)] if self.scale != 1 else [])

    def build(self, num_classes: int) -> OneHotLabel:
        return OneHotLabel(num_classes, self.scale)
