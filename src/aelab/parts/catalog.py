"""The catalogue of model parts: for each slot of the model, its names and their settings
classes. `[model.<slot>] name = "..."` picks a row; the settings class checks, describes and
builds the part (settings.py). The config loader and the registry both read it from here.
"""

from __future__ import annotations

import dataclasses

from aelab.parts import conditions, latents, likelihoods, networks, noise, objectives, priors, quantized
from aelab.settings import value_text


def _names(*classes) -> dict[str, type]:
    return {cls.name: cls for cls in classes}


# model part -> name -> its settings class (settings.py); `[model.<part>] name = "..."`.
PARTS = {
    "network": _names(networks.MLPSettings, networks.CNNSettings),
    "latent": _names(latents.PointSettings, latents.GaussianLatentSettings, latents.TwoLayerSettings,
                     quantized.VQSettings),
    "prior": _names(priors.StandardPriorSettings, priors.ConditionalPriorSettings, priors.VampPriorSettings),
    "likelihood": _names(likelihoods.BernoulliSettings, likelihoods.GaussianLikelihoodSettings, likelihoods.LaplaceSettings),
    "objective": _names(objectives.ELBOSettings, objectives.IWAESettings),
    "corruption": _names(noise.NoCorruptionSettings, noise.GaussianNoiseSettings),
    "condition": _names(conditions.NoConditionSettings, conditions.LabelSettings),
    "channel": _names(noise.NoChannelSettings, noise.AWGNSettings),
}


def listing(parts: dict[str, dict[str, type]] | None = None) -> str:
    """Every part of `parts` (PARTS) as a Markdown table: its slot, name, settings with their
    defaults and the first sentence of what its settings class says it is. The docs build puts
    it in docs/configuration.md (tools/mkdocs_hooks.py), so that the page lists what the code has."""
    rows = ["| part | name | settings, with defaults | what it is |", "|---|---|---|---|"]
    for slot, names in (parts or PARTS).items():
        for name, cls in names.items():
            settings = ", ".join(f"`{f.name}` `{value_text(getattr(cls(), f.name))}`" for f in dataclasses.fields(cls))
            said = " ".join((cls.__doc__ or "").split())
            said = said.split(": ", 1)[1] if said.startswith("[model.") and ": " in said else said
            said = said.split(". ")[0].rstrip(".").replace("|", "\\|")
            rows.append(f"| `model.{slot}` | `{name}` | {settings or 'none'} | {said} |")
    return "\n".join(rows) + "\n"
