"""The model's parts and their settings; what a user's own part is written with.

    from aelab.parts import PriorSettings, Prior, bounded      # a prior's settings and what they build
    from aelab.parts import NetworkSettings, Encoder, Decoder  # a network's
    from aelab.parts.adapters import FlatEncoder, FlatDecoder  # a course's networks, wrapped

See docs/own-model.md for the protocol of each slot.
"""

from aelab.parts.slots import (ChannelSettings, ConditionSettings, CorruptionSettings, Decoder, Encoder, Latent,
                               LatentSettings, LikelihoodSettings, NetworkSettings, Objective, ObjectiveSettings,
                               Posterior, Prior, PriorDensity, PriorSettings)
from aelab.settings import PartSettings, bounded, choice

__all__ = ["ChannelSettings", "ConditionSettings", "CorruptionSettings", "Decoder", "Encoder", "Latent",
           "LatentSettings", "LikelihoodSettings", "NetworkSettings", "Objective", "ObjectiveSettings", "PartSettings",
           "Posterior", "Prior", "PriorDensity", "PriorSettings", "bounded", "choice"]
