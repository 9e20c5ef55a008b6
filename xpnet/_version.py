"""The version of xpnet, on its own so that packaging tools read it without importing xpnet."""

__version__ = "0.1.0"
