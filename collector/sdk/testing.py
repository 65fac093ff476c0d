"""The conformance kit a connector's own tests run: every connector must pass it."""

from collector.conformance import ConnectorConformance, collect_all

__all__ = ["ConnectorConformance", "collect_all"]
