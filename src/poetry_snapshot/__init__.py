"""poetry-snapshot: prove a Poetry environment matches its lock, run experiments from snapshots."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version

try:
    __version__ = version("poetry-snapshot")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
