"""The model's parts and their settings; what a user's own part is written with.

    from aelab.parts import PartSettings, bounded, choice     # a part's settings class
    from aelab.parts.adapters import FlatEncoder, FlatDecoder  # a course's networks, wrapped

See docs/own-model.md for the protocol of each slot.
"""

from aelab.parts.settings import PartSettings, bounded, choice

__all__ = ["PartSettings", "bounded", "choice"]
