"""The connector conformance kit: subclass :class:`ConnectorConformance` in a connector's tests.

It checks what every connector owes the core: settings validate (and bad ones are rejected), secret
fields are ``SecretStr`` and never show in reprs or dumps, observations are valid and mapped, checks
run without raising, and a re-run over unchanged sources yields the same evidence. The run's ``now`` is
fixed (:data:`CONFORMANCE_NOW` unless a test class sets its own), so the kit never depends on the wall clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import SecretStr, ValidationError

from collector.canonical import content_sha256
from collector.connector import CollectContext, Connector, secret_fields
from collector.mappings import Mappings, load_mappings
from collector.model import Observation, Outcome

__all__ = ["CONFORMANCE_NOW", "ConnectorConformance", "collect_all"]

CONFORMANCE_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def collect_all(
    connector: Connector[Any], ctx: CollectContext | None = None, *, now: datetime = CONFORMANCE_NOW
) -> tuple[list[Observation], CollectContext]:
    ctx = ctx or CollectContext(instance="conformance", run_id="conformance-run", now=now, mappings=load_mappings())
    observations = list(connector.collect(ctx))
    return observations, ctx


class ConnectorConformance:
    """Set ``connector_cls``; implement ``settings(tmp_path)``; optionally ``invalid_settings`` and
    ``secret_values`` (dotted field path, e.g. ``prometheus.password`` -> a value that must never be printed)."""

    connector_cls: ClassVar[type[Connector[Any]]]
    invalid_settings: ClassVar[list[dict[str, Any]]] = []
    secret_values: ClassVar[dict[str, str]] = {}
    secret_companions: ClassVar[dict[str, dict[str, Any]]] = {}
    """Other settings a secret needs to validate (e.g. a username beside a password), by dotted path."""
    expect_observations: ClassVar[bool] = True
    now: ClassVar[datetime] = CONFORMANCE_NOW
    """The run's ``now`` in :meth:`context`; set it where the sources' dates need another."""

    def settings(self, tmp_path: Path) -> dict[str, Any]:
        raise NotImplementedError

    def context(self) -> CollectContext:
        return CollectContext(instance="conformance", run_id="conformance-run", now=self.now, mappings=load_mappings())

    def _connector(self, tmp_path: Path) -> Connector[Any]:
        return self.connector_cls.from_mapping(self.settings(tmp_path))

    def _observations(self, tmp_path: Path) -> Iterator[Observation]:
        yield from self._connector(tmp_path).collect(self.context())

    # -- the kit ----------------------------------------------------------------------------------
    def test_declares_its_contract(self) -> None:
        cls = self.connector_cls
        assert cls.type, "type must be set"
        assert cls.version, "version must be set"
        assert cls.kinds, "a connector declares the evidence kinds it yields"
        ids = [c.id for c in cls.checks]
        assert len(ids) == len(set(ids)), f"duplicate check ids: {ids}"
        for check in cls.checks:
            assert check.kind in cls.kinds, f"check {check.id} is for undeclared kind {check.kind}"

    def test_kinds_and_checks_are_mapped(self) -> None:
        mappings: Mappings = load_mappings()
        for kind in self.connector_cls.kinds:
            assert kind in mappings.kinds, f"evidence kind {kind} has no entry in mappings/evidence"
        for check in self.connector_cls.checks:
            assert check.id in mappings.checks, f"check {check.id} has no entry in mappings/evidence"
            assert mappings.checks[check.id].kind == check.kind

    def test_settings_validate(self, tmp_path: Path) -> None:
        settings = self.connector_cls.Settings.model_validate(self.settings(tmp_path))
        again = self.connector_cls.Settings.model_validate(settings.model_dump())
        assert again == settings

    def test_invalid_settings_are_rejected(self) -> None:
        for raw in [{"no_such_setting_anywhere": 1}, *self.invalid_settings]:
            try:
                self.connector_cls.Settings.model_validate(raw)
            except ValidationError:
                continue
            raise AssertionError(f"settings {raw!r} were accepted")

    def test_secrets_are_redacted(self, tmp_path: Path) -> None:
        declared = set(secret_fields(self.connector_cls.Settings))
        assert declared == set(self.secret_values), (
            f"secret fields declared {sorted(declared)} but the kit was given {sorted(self.secret_values)}"
        )
        if not self.secret_values:
            return
        for path, value in self.secret_values.items():  # one at a time: secrets may exclude each other
            raw = self.settings(tmp_path)
            _set_path(raw, path.split("."), value)
            for other, other_value in self.secret_companions.get(path, {}).items():
                _set_path(raw, other.split("."), other_value)
            settings = self.connector_cls.Settings.model_validate(raw)
            assert isinstance(_get_path(settings, path.split(".")), SecretStr), f"{path} is not a SecretStr"
            for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
                assert value not in text, f"secret {path} leaks in {text[:80]}..."

    def test_observations_are_valid(self, tmp_path: Path) -> None:
        connector = self._connector(tmp_path)
        ctx = self.context()
        observations = list(connector.collect(ctx))
        if self.expect_observations:
            assert observations, f"no observations; problems: {ctx.problems}"
        for obs in observations:
            assert isinstance(obs, Observation)
            assert obs.kind in connector.kinds
            assert obs.observed_at.tzinfo is not None
            content_sha256(obs.payload)  # raises if the payload is not canonical JSON
            for check in connector.checks:
                if check.kind != obs.kind:
                    continue
                result = check.run(obs, connector.settings, ctx.now)
                assert result.result in set(Outcome)
                assert result.result is not Outcome.ERROR, f"{check.id} errored on {obs.subject}: {result.message}"
                assert result.message, f"{check.id} gave no message"

    def test_reruns_are_idempotent(self, tmp_path: Path) -> None:
        connector = self._connector(tmp_path)

        def fingerprint() -> list[tuple[str, str, str, str]]:
            return sorted(
                (o.kind, str(o.subject), o.observed_at.isoformat(), content_sha256(o.payload))
                for o in connector.collect(self.context())
            )

        first = fingerprint()
        assert first == fingerprint(), "a second run over unchanged sources yielded different evidence"


def _set_path(raw: dict[str, Any], path: list[str], value: str) -> None:
    for part in path[:-1]:
        raw = raw.setdefault(part, {})
    raw[path[-1]] = value


def _get_path(model: Any, path: list[str]) -> Any:
    for part in path:
        model = getattr(model, part)
    return model
