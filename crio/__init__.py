"""crio: a Kubernetes Container Runtime Interface (CRI v1) daemon in Python."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
