"""The one YAML configuration file, validated with every problem reported at its location."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from collector.canonical import content_sha256
from collector.connector import Connector, ConnectorSettings, load_connector
from collector.durations import Duration
from collector.errors import ConfigurationError, MappingError
from collector.mappings import FreshnessPolicy, Mappings, default_mappings_dir, load_mappings
from collector.model import ControlRef
from collector.urls import redact_urls_in, url_credentials

__all__ = [
    "CONFIG_ENV",
    "AppConfig",
    "ConnectorInstance",
    "ExportSchedule",
    "LoadedConfig",
    "ResolvedInstance",
    "RetryPolicy",
    "Schedule",
    "load_and_resolve",
    "load_config",
]

CONFIG_ENV = "EVIDENCE_COLLECTOR_CONFIG"
_NAME = r"^[a-z0-9][a-z0-9_-]{0,99}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(value: str) -> str:
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from exc
    return value


class Schedule(_Strict):
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration = timedelta(seconds=0)
    misfire_grace: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(minutes=10)
    """A run that takes longer is cancelled and recorded as failed."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval (e.g. 1h) or cron (e.g. '0 */6 * * *')")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        return self


class RetryPolicy(_Strict):
    attempts: int = Field(default=3, ge=1, le=20)
    initial: Duration = timedelta(seconds=2)
    max: Duration = timedelta(seconds=60)


class ConnectorInstance(_Strict):
    name: str = Field(pattern=_NAME)
    type: str
    schedule: Schedule = Schedule(interval=timedelta(hours=1))
    settings: dict[str, Any] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy()
    enabled: bool = True


class ExportSchedule(_Strict):
    """A signed bundle the daemon writes on a cron schedule: the period of ``window`` ending at the run time."""

    name: str = Field(pattern=_NAME)
    cron: str
    framework: str
    controls: list[str] = Field(default_factory=list)
    window: Duration = timedelta(days=90)
    destination: str = Field(min_length=1)
    """A directory, or ``s3://bucket/prefix``."""
    retention: int = Field(default=30, ge=1)
    """How many of this schedule's bundles to keep at the destination (the newest)."""
    sign_key_file: Path | None = None
    sign_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The name of an environment variable holding the PEM (never the key itself)."""

    _valid_cron = field_validator("cron")(_check_cron)

    @field_validator("destination")
    @classmethod
    def _bucket_given(cls, value: str) -> str:
        if value.startswith("s3://") and not value.removeprefix("s3://").partition("/")[0]:
            raise ValueError(f"{value!r} names no bucket: use s3://bucket/prefix")
        return value

    @model_validator(mode="after")
    def _one_key_and_a_window(self) -> ExportSchedule:
        if (self.sign_key_file is None) == (self.sign_key_env is None):
            raise ValueError("give exactly one of sign_key_file (a PEM file) or sign_key_env (a variable's name)")
        if self.window <= timedelta(0):
            raise ValueError("window must be positive")
        return self


class DatabaseConfig(_Strict):
    url: str = "sqlite:///evidence.db"


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:9464"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104 - operator's choice

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class FreshnessConfig(_Strict):
    overrides: dict[str, FreshnessPolicy] = Field(default_factory=dict)
    """Per control (``framework:id``): a TTL and at-risk tolerance replacing the evidence kinds' own."""


class AppConfig(BaseSettings):
    """Environment variables override the file: ``EVIDENCE_COLLECTOR_DATABASE__URL``, ``..._HTTP__LISTEN``."""

    model_config = SettingsConfigDict(
        env_prefix="EVIDENCE_COLLECTOR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    mappings: Path | None = None
    log: LogConfig = LogConfig()
    freshness: FreshnessConfig = FreshnessConfig()
    shutdown_grace: Duration = timedelta(seconds=30)
    connectors: list[ConnectorInstance] = Field(default_factory=list)
    exports: list[ExportSchedule] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _unique_names(self) -> AppConfig:
        seen: set[str] = set()
        for instance in self.connectors:
            if instance.name in seen:
                raise ValueError(f"connector name {instance.name!r} is used twice")
            seen.add(instance.name)
        exports: set[str] = set()
        for export in self.exports:
            if export.name in exports:
                raise ValueError(f"export name {export.name!r} is used twice")
            exports.add(export.name)
        return self


@dataclass(frozen=True)
class ResolvedInstance:
    config: ConnectorInstance
    connector_cls: type[Connector[Any]]
    settings: ConnectorSettings
    config_hash: str

    def build(self) -> Connector[Any]:
        return self.connector_cls(self.settings)


@dataclass(frozen=True)
class LoadedConfig:
    path: Path | None
    app: AppConfig
    mappings: Mappings
    instances: list[ResolvedInstance]
    overrides: dict[ControlRef, FreshnessPolicy]
    warnings: list[str] = field(default_factory=list)
    """What works but should change (credentials in a connector's URL); logged by every command."""

    @property
    def active_kinds(self) -> frozenset[str]:
        """Evidence kinds the configured connectors produce."""
        return frozenset(kind for inst in self.instances for kind in inst.connector_cls.kinds)

    def instance(self, name: str) -> ResolvedInstance:
        for inst in self.instances:
            if inst.config.name == name:
                return inst
        known = ", ".join(i.config.name for i in self.instances) or "none"
        raise ConfigurationError(f"no connector named {name!r} in the configuration (configured: {known})")


def yaml_line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Follow a pydantic error location into the YAML node tree to find its line."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
            if nxt is None:
                key = next((k for k, _ in node.value if getattr(k, "value", None) == str(part)), None)
                return key.start_mark.line + 1 if key is not None else best
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return best
        best = node.start_mark.line + 1
    return best


def _interpolate(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(f"{where}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(substitute, value)
    return value


def _fmt(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_config(path: Path | None) -> tuple[AppConfig, yaml.Node | None]:
    """Parse and validate the file itself (not yet the connectors' settings)."""
    raw: Any = {}
    node: yaml.Node | None = None
    label = str(path) if path else "(defaults)"
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{path}: cannot read configuration: {exc}") from exc
        try:
            node = yaml.compose(text)
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{path}: the configuration must be a mapping at the top level")
    problems: list[str] = []
    raw = _interpolate(raw, "", problems)
    if problems:
        raise ConfigurationError("\n".join(f"{label}: {p}" for p in problems))
    try:
        return AppConfig(**raw), node
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = yaml_line_of(node, loc)
            at = f"{label}:{line}" if line else label
            lines.append(f"{at}: {_fmt(loc)}: {err['msg']}")
        raise ConfigurationError("\n".join(lines)) from exc


def load_and_resolve(path: Path | None) -> LoadedConfig:
    """Load the file, the mappings and every connector's settings; collect all problems before failing."""
    app, node = load_config(path)
    label = str(path) if path else "(defaults)"
    problems: list[str] = []
    warnings: list[str] = []
    mappings: Mappings | None = None
    mappings_dir = app.mappings
    if mappings_dir is not None and path is not None and not mappings_dir.is_absolute():
        mappings_dir = (path.parent / mappings_dir).resolve()
    try:
        mappings = load_mappings(mappings_dir or default_mappings_dir())
    except MappingError as exc:
        problems.append(f"mappings: {exc}")
    instances: list[ResolvedInstance] = []
    for i, inst in enumerate(app.connectors):
        base = ("connectors", i)
        try:
            cls = load_connector(inst.type)
        except LookupError as exc:
            problems.append(f"{label}:{yaml_line_of(node, (*base, 'type'))}: connectors[{i}].type: {exc}")
            continue
        warnings += _credentials_in_urls(inst.settings, (*base, "settings"), node, label)
        try:
            settings = cls.Settings.model_validate(inst.settings)
        except ValidationError as exc:
            for err in exc.errors():
                loc = (*base, "settings", *err["loc"])
                problems.append(f"{label}:{yaml_line_of(node, loc)}: {_fmt(loc)}: {err['msg']}")
            continue
        if mappings is not None:
            unmapped = sorted(k for k in cls.kinds if k not in mappings.kinds)
            if unmapped:
                problems.append(f"connectors[{i}] ({inst.name}): evidence kinds without a mapping: {unmapped}")
        digest = content_sha256({"type": inst.type, "settings": redact_urls_in(settings.model_dump(mode="json"))})
        if inst.enabled:
            instances.append(ResolvedInstance(inst, cls, settings, digest))
    overrides: dict[ControlRef, FreshnessPolicy] = {}
    if mappings is not None:
        for text, policy in app.freshness.overrides.items():
            try:
                for ref in mappings.resolve(text):
                    overrides[ref] = policy
            except (LookupError, ValueError) as exc:
                loc = ("freshness", "overrides", text)
                problems.append(f"{label}:{yaml_line_of(node, loc)}: freshness.overrides[{text!r}]: {exc}")
    if mappings is not None:
        problems += _export_problems(app.exports, mappings, node, label)
    if problems or mappings is None:
        raise ConfigurationError("\n".join(problems))
    return LoadedConfig(path, app, mappings, instances, overrides, warnings)


def _credentials_in_urls(value: Any, loc: tuple[str | int, ...], node: yaml.Node | None, label: str) -> list[str]:
    """A URL in a connector's settings should not carry credentials: they are redacted wherever the URL is
    stored or printed, but a secret setting is the one place they are meant to be. A warning, not an error:
    such a configuration works and leaks nothing. The database URL is exempt (drivers read the password there;
    it is never stored, and printed masked)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _credentials_in_urls(v, (*loc, k), node, label)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _credentials_in_urls(v, (*loc, i), node, label)]
    if not isinstance(value, str) or "://" not in value or not (found := url_credentials(value)):
        return []
    return [
        f"{label}:{yaml_line_of(node, loc)}: {_fmt(loc)}: the URL carries credentials ({', '.join(found)}); put"
        " credentials in the connector's secret settings (basic auth username/password, token, or their _env"
        " forms), not in the URL"
    ]


def _export_problems(
    exports: list[ExportSchedule], mappings: Mappings, node: yaml.Node | None, label: str
) -> list[str]:
    """Each scheduled export's framework and controls must be in the loaded catalogs."""
    problems = []
    for i, export in enumerate(exports):
        if export.framework not in mappings.catalogs:
            at = f"{label}:{yaml_line_of(node, ('exports', i, 'framework'))}"
            known = ", ".join(mappings.frameworks())
            problems.append(f"{at}: exports[{i}].framework: unknown framework {export.framework!r} (known: {known})")
            continue
        for j, text in enumerate(export.controls):
            at = f"{label}:{yaml_line_of(node, ('exports', i, 'controls', j))}: exports[{i}].controls[{j}]"
            try:
                refs = mappings.resolve(text if ":" in text else f"{export.framework}:{text}")
            except (LookupError, ValueError) as exc:
                problems.append(f"{at}: {exc}")
                continue
            if any(ref.framework != export.framework for ref in refs):
                problems.append(f"{at}: {text!r} is not a control of the exported framework {export.framework!r}")
    return problems


def config_path_from_env(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None
