"""The catalogue of model parts: for each slot of the model, its names and their settings
classes. `[model.<slot>] name = "..."` picks a row; the settings class checks, describes and
builds the part (settings.py). The config loader and the registry both read it from here.
"""

from __future__ import annotations

from aelab.parts import conditions, latents, likelihoods, networks, noise, objectives, priors, quantized


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
