"""The installed conceptlab version, recorded in every run's metrics.json and saved model, so
a report can say which code produced a result."""

from __future__ import annotations


def package_version() -> str:
    """conceptlab's installed version (``0.0.0`` when run from a source tree not installed)."""
    from conceptlab import __version__

    return str(__version__)
