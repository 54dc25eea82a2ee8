"""aelab: train, measure and explore autoencoders."""

__version__ = "0.1.0"
