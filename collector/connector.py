"""The connector plugin API: a pydantic ``Settings`` model, one ``collect`` generator, pure checks."""

from __future__ import annotations

import builtins
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, ValidationInfo

from collector.errors import ConfigurationError, extra_needed
from collector.model import CheckResult, Observation, Outcome
from collector.numbers import non_finite_paths
from collector.skew import DEFAULT_CLOCK_SKEW_TOLERANCE, in_the_future
from collector.urls import redact_text

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from collector.mappings import Mappings

__all__ = [
    "CONFIG_DIR_CONTEXT",
    "ENTRY_POINT_GROUP",
    "Check",
    "CollectContext",
    "Connector",
    "ConnectorSettings",
    "LocalPath",
    "Problem",
    "RunCancelled",
    "available_connectors",
    "load_connector",
    "resolve_local_path",
    "secret_fields",
    "secret_from",
]

ENTRY_POINT_GROUP = "evidence_collector.connectors"


class ConnectorSettings(BaseModel):
    """Base for every connector's settings: unknown keys are errors, secrets are ``SecretStr``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


CONFIG_DIR_CONTEXT = "config_dir"
"""Validation-context key: the directory of the configuration file the settings came from."""


def resolve_local_path(text: str, base: Path | None) -> str:
    """A relative file path or glob, made absolute against ``base``; URLs, ``~`` and absolute paths are kept."""
    if base is None or not text.strip() or "://" in text or text.startswith("~") or os.path.isabs(text):
        return text
    return str(base / text)


def _against_config_dir(value: str, info: ValidationInfo) -> str:
    base = info.context.get(CONFIG_DIR_CONTEXT) if isinstance(info.context, dict) else None
    return resolve_local_path(value, base)


LocalPath = Annotated[str, AfterValidator(_against_config_dir)]
"""A setting naming a local file, directory or glob: relative values resolve against the configuration
file's directory (the core passes it in the validation context), so a config runs from any directory."""

S = TypeVar("S", bound=ConnectorSettings)


@dataclass(frozen=True, slots=True)
class Check(Generic[S]):
    """A pure judgement over one observation. Thresholds come from the connector's settings."""

    id: str
    kind: str
    title: str
    evaluate: Callable[[Observation, S, datetime], CheckResult]

    def run(
        self,
        observation: Observation,
        settings: S,
        now: datetime,
        skew: timedelta = DEFAULT_CLOCK_SKEW_TOLERANCE,
        *,
        payload_is_finite: bool = False,
    ) -> CheckResult:
        """The check's judgement; a ``pass`` over evidence holding a non-finite number becomes an ``error``, and
        one over evidence dated later than ``now`` plus ``skew`` a ``fail``, whatever the check overlooked.

        ``payload_is_finite``: the caller already knows the payload holds no NaN/±Inf float (the runner encodes
        it as canonical JSON, which refuses them, before judging), so the walk over the payload is skipped."""
        try:
            result = self.evaluate(observation, settings, now)
        except Exception as exc:  # noqa: BLE001 - a broken check is recorded as an error result, never a pass
            return CheckResult(self.id, Outcome.ERROR, f"check raised {type(exc).__name__}: {exc}")
        if result.check_id != self.id:
            raise RuntimeError(f"check {self.id} returned a result labelled {result.check_id}")
        if result.result is not Outcome.PASS:
            return result
        found = [] if payload_is_finite else non_finite_paths(observation.payload)
        if found:
            where = found[0]
            return CheckResult(self.id, Outcome.ERROR, f"not evidence: non-finite number at {where}", {"path": where})
        future = in_the_future(observation.observed_at, now, skew)
        if future is not None:
            details = {"observed_at": observation.observed_at.isoformat()}
            return CheckResult(self.id, Outcome.FAIL, f"observed at {future}", details)
        return result

    def result(self, outcome: Outcome, message: str, **details: Any) -> CheckResult:
        return CheckResult(self.id, outcome, message, details)


@dataclass(frozen=True, slots=True)
class Problem:
    """A skipped input: which source, and why. Recorded in the run row, the log and metrics."""

    source: str
    reason: str


class RunCancelled(Exception):
    """Raised inside ``collect`` when the run's deadline passed or the daemon is stopping."""


@dataclass
class CollectContext:
    """What the core hands a connector for one run."""

    instance: str
    run_id: str
    now: datetime
    cursor: Any = None
    """The cursor saved after the last successful run (``None`` on a first run)."""
    log: Any = None
    problems: list[Problem] = field(default_factory=list)
    new_cursor: Any = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    mappings: Mappings | None = None
    """The loaded catalogs, for the rare connector whose inputs name controls themselves (attestation sidecars)
    and must reject a wrong one at its file and line. Connectors never tag evidence with it."""

    def problem(self, source: str, reason: str) -> None:
        """Record a bad input and carry on with the next (URLs in ``source`` and ``reason`` lose credentials)."""
        source, reason = redact_text(source), redact_text(reason)
        self.problems.append(Problem(source, reason))
        if self.log is not None:
            self.log.warning("input_skipped", source=source, reason=reason)

    def set_cursor(self, value: Any) -> None:
        """Saved by the core only after this run's evidence is committed."""
        self.new_cursor = value

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise RunCancelled(f"run {self.run_id} of {self.instance} was cancelled")


class Connector(ABC, Generic[S]):
    """Subclass, set the class attributes, implement :meth:`collect`."""

    type: ClassVar[str]
    version: ClassVar[str]
    Settings: ClassVar[builtins.type[ConnectorSettings]]
    kinds: ClassVar[frozenset[str]]
    checks: ClassVar[Sequence[Check[Any]]] = ()

    def __init__(self, settings: S) -> None:
        self.settings = settings

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Connector[Any]:
        return cls(cls.Settings.model_validate(raw))  # type: ignore[arg-type]

    @abstractmethod
    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        """Yield observations; call ``ctx.problem`` for a bad input and keep going."""

    def produced_kinds(self) -> frozenset[str]:
        """The evidence kinds this instance will produce with its settings (a subset of :attr:`kinds`). Controls
        reachable only through kinds it leaves out are not reported missing: override when a setting turns a
        source off."""
        return self.kinds

    def preflight(self) -> Iterator[Problem]:
        """Checks that need the source itself (a query's syntax, a name that must exist), run by `config check`.

        Yield a :class:`Problem` for each setting the source rejects. A source that cannot be reached is not a
        problem here (the daemon may run where `config check` cannot reach): skip it."""
        return iter(())


def secret_fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every ``SecretStr`` field, nested settings models included."""
    out: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        candidates = get_args(annotation) or (annotation,)
        if SecretStr in candidates:
            out.append(prefix + name)
            continue
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                out.extend(secret_fields(candidate, f"{prefix}{name}."))
    return out


@cache
def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_connectors() -> list[str]:
    return sorted(_entry_points())


def load_connector(type_name: str) -> type[Connector[Any]]:
    """Load a connector class by its type name, lazily, through its entry point.

    An unknown name is a :class:`LookupError`; a connector whose library is not installed is a
    :class:`collector.errors.MissingExtraError` (also a ``LookupError``) naming the extra to install."""
    eps = _entry_points()
    if type_name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise LookupError(f"unknown connector type {type_name!r} (known: {known})")
    with extra_needed(f"connector {type_name!r}"):
        cls = eps[type_name].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise LookupError(f"entry point {type_name!r} does not name a Connector class: {cls!r}")
    return cls


def secret_from(value: SecretStr | None, env: str | None, what: str) -> str | None:
    """The secret given inline, else the one in the named environment variable (which must be set), else None;
    ``what`` names the setting (``password`` -> ``password_env``) in the error."""
    if value is not None:
        return value.get_secret_value()
    if env is None:
        return None
    found = os.environ.get(env)
    if found is None:
        raise ConfigurationError(f"environment variable {env} ({what}_env) is not set")
    return found
