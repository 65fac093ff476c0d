"""Audit export: signed point-in-time evidence bundles with observation-window coverage, HTML and OSCAL."""

from collector.export.bundle import ExportRequest, ExportResult, Progress, build_request, export_bundle
from collector.export.coverage import Arrival, ControlCoverage, CoverageSweep, Gap, Period, control_gaps
from collector.export.errors import BundleMismatch, ExportError
from collector.export.matrix import ControlSummary, Window
from collector.export.signing import load_public_key, load_signing_key
from collector.export.verify import VerifyReport, verify_bundle

__all__ = [
    "Arrival",
    "BundleMismatch",
    "ControlCoverage",
    "ControlSummary",
    "CoverageSweep",
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "Gap",
    "Period",
    "Progress",
    "VerifyReport",
    "Window",
    "build_request",
    "control_gaps",
    "export_bundle",
    "load_public_key",
    "load_signing_key",
    "verify_bundle",
]
