"""A connector whose run takes a set time: lets the HA test kill a replica mid-run.

Registered only inside the HA test's daemon processes (a dist-info directory on PYTHONPATH)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from collector.connector import CollectContext, Connector, ConnectorSettings
from collector.model import Observation, Subject

__all__ = ["SlowConnector", "SlowSettings"]


class SlowSettings(ConnectorSettings):
    run_seconds: float = 2.0
    subjects: int = 4
    started_file: str | None = None
    """Touched when a run starts, so a test knows a run is in progress."""


class SlowConnector(Connector[SlowSettings]):
    type = "ha_slow"
    version = "1.0.0"
    Settings = SlowSettings
    kinds = frozenset({"container.scan"})

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        if self.settings.started_file:
            Path(self.settings.started_file).write_text(ctx.run_id)
        for i in range(self.settings.subjects):
            time.sleep(self.settings.run_seconds / self.settings.subjects)
            ctx.raise_if_cancelled()
            yield Observation(
                kind="container.scan",
                subject=Subject("container_image", f"registry.example/ha@sha256:{i:064x}"),
                observed_at=ctx.now,
                payload={"image": f"ha-{i}", "run_id": ctx.run_id, "findings": []},
                source=f"ha-slow/{i}",
            )
