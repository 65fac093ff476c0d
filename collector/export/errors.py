"""What can go wrong exporting or verifying a bundle."""

from __future__ import annotations

__all__ = ["BundleMismatch", "ExportError"]


class ExportError(ValueError):
    """Bad input to an export (scope, time window, key, destination): nothing was written."""


class BundleMismatch(ValueError):
    """A bundle does not verify; the message names the first thing that does not match."""
