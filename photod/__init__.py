"""photod: score, rate and improve a photographer's imports with an aesthetic CNN.

Importing this package is cheap on purpose: no torch, no model. Heavy pieces load on first use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("photod")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
