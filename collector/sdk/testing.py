"""The conformance kit a connector's own tests run: every connector must pass it."""

from collector.conformance import CONFORMANCE_NOW, ConnectorConformance, collect_all

__all__ = ["CONFORMANCE_NOW", "ConnectorConformance", "collect_all"]
