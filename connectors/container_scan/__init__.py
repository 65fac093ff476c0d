"""Container and filesystem vulnerability scans (Trivy, Grype, SARIF) as ``container.scan`` evidence."""

from collector.sdk.vulnerability_scan import CHECKS, NO_FIXABLE_VULNS, SCAN_RECENT

from .connector import ContainerScanConnector
from .settings import ContainerScanSettings

__all__ = ["CHECKS", "NO_FIXABLE_VULNS", "SCAN_RECENT", "ContainerScanConnector", "ContainerScanSettings"]
