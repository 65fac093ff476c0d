"""Environment variables read by the core, in a module light enough for the command line to import at start."""

from __future__ import annotations

__all__ = ["CONFIG_ENV"]

CONFIG_ENV = "EVIDENCE_COLLECTOR_CONFIG"
