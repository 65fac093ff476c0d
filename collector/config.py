"""The one YAML configuration file, validated with every problem reported at its location."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from collector.canonical import content_sha256
from collector.connector import (
    CONFIG_DIR_CONTEXT,
    Connector,
    ConnectorSettings,
    load_connector,
    resolve_local_path,
)
from collector.durations import Duration, format_duration
from collector.envvars import CONFIG_ENV
from collector.errors import ConfigurationError, MappingError
from collector.mappings import FreshnessPolicy, Mappings, default_mappings_dir, load_mappings
from collector.model import ControlRef
from collector.urls import redact_urls_in, url_credentials
from collector.yamlfile import YamlError, read_yaml, yaml_line_of

__all__ = [
    "CONFIG_ENV",
    "ApiToken",
    "AppConfig",
    "AuthConfig",
    "CheckpointConfig",
    "ConnectorInstance",
    "ExportSchedule",
    "HttpConfig",
    "LoadedConfig",
    "ProxyAuth",
    "ResolvedInstance",
    "RetryPolicy",
    "Role",
    "Schedule",
    "SpoolConfig",
    "load_and_resolve",
    "load_config",
]

_NAME = r"^[a-z0-9][a-z0-9_-]{0,99}$"
_MAX_CLOCK_SKEW = timedelta(days=1)
MIN_INTERVAL = timedelta(seconds=1)
"""The shortest collection interval a connector may be scheduled at."""
CRON_HORIZON = timedelta(days=5 * 366)
"""A cron expression must fire within this long from now (``0 0 31 2 *`` never does)."""
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(value: str) -> str:
    try:
        trigger = CronTrigger.from_crontab(value, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from exc
    now = datetime.now(UTC)
    fires = trigger.get_next_fire_time(None, now)
    if fires is None or fires > now + CRON_HORIZON:
        raise ValueError(f"cron expression {value!r} never fires: no time within the next 5 years matches it")
    return value


class Schedule(_Strict):
    interval: Duration | None = None
    """At least 1s."""
    cron: str | None = None
    """Five fields, in UTC; one that cannot fire within the next 5 years (``0 0 31 2 *``) is refused."""
    jitter: Duration = timedelta(seconds=0)
    misfire_grace: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(minutes=10)
    """A run that takes longer is cancelled and recorded as failed; must be more than 0s."""

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)

    @field_validator("interval")
    @classmethod
    def _not_too_often(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < MIN_INTERVAL:
            given, least = f"{value.total_seconds():g}s", format_duration(MIN_INTERVAL)
            raise ValueError(f"{given} is shorter than the minimum interval, {least}")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("timeout must be positive: a run with no time to run always fails")
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> Schedule:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of interval (e.g. 1h) or cron (e.g. '0 */6 * * *')")
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
    retention: int = Field(default=30, ge=1, le=10_000)
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


_DATABASE_HINT = "use sqlite:///path/to/evidence.db or postgresql+psycopg://user:password@host:5432/database"


def check_database_url(value: str) -> str:
    """The URL parses, names a supported database, and its driver is installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL: {_DATABASE_HINT}") from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: {_DATABASE_HINT}")
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown {backend} driver {driver!r}: {_DATABASE_HINT}") from None
    if dialect.is_async:
        raise ValueError(f"{driver!r} is an asyncio driver: {_DATABASE_HINT}")
    try:
        dialect.import_dbapi()
    except ImportError:
        raise ValueError(f"the {backend} driver {driver!r} is not installed: {_DATABASE_HINT}") from None
    return value


class DatabaseConfig(_Strict):
    url: str = "sqlite:///evidence.db"
    """A relative SQLite file resolves against the configuration file's directory."""

    _valid_url = field_validator("url")(check_database_url)


Role = Literal["viewer", "attester", "admin"]
"""``viewer`` reads (an auditor), ``attester`` also uploads attestations, ``admin`` also reads the access log."""


class ApiToken(_Strict):
    """A bearer token, stored as the SHA-256 of its text (``evidence-collector token new`` prints both)."""

    name: str = Field(pattern=_NAME)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ProxyAuth(_Strict):
    """A reverse proxy (oauth2-proxy, an ingress's auth) that authenticates users and names them in a header.

    The header is believed only on connections from ``trusted`` addresses; from anywhere else it is refused."""

    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(min_length=1)
    user_header: str = Field(default="X-Forwarded-User", pattern=r"^[A-Za-z0-9-]{1,100}$")
    roles: dict[str, Role] = Field(default_factory=dict)
    """User name -> role."""
    default_role: Role | None = None
    """The role of a user not in ``roles``; none (the default): such a user is refused."""


class AuthConfig(_Strict):
    anonymous: Role | None = None
    """The role of a request without credentials; none (the default): such a request is refused."""
    tokens: list[ApiToken] = Field(default_factory=list)
    tokens_file: Path | None = None
    """A YAML list of tokens (``name``, ``role``, ``sha256``), e.g. a Kubernetes Secret mounted as a file; read
    again when it changes."""
    proxy: ProxyAuth | None = None


class HttpConfig(_Strict):
    listen: str = "127.0.0.1:9464"
    """``host:port``: an IP address (IPv6 in brackets), a host name, or nothing for every interface; port 0-65535."""
    max_connections: int = Field(default=4096, ge=16, le=100_000)
    """Open connections and requests in progress beyond this are answered 503 at once (descriptors permitting)."""
    backlog: int = Field(default=2048, ge=16, le=65_535)
    """Connections the kernel queues before they are accepted."""
    header_timeout: Duration = timedelta(seconds=10)
    """A connection that has not sent a whole request head this long after it opened, or after its last response,
    is closed (idle and slow clients cannot hold descriptors)."""
    keep_alive_timeout: Duration = timedelta(seconds=5)
    """An idle keep-alive connection is closed after this long."""
    auth: AuthConfig = AuthConfig()

    @field_validator("header_timeout", "keep_alive_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(minutes=10):
            raise ValueError("must be more than 0s and at most 10m")
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not re.fullmatch(r"[0-9]+", port):
            raise ValueError(f"{value!r} is not host:port")
        if len(port) > 5 or int(port) > 65535:
            raise ValueError(f"{value!r}: port {port} is out of range (0-65535)")
        if not _listen_host(host):
            raise ValueError(f"{value!r}: {host!r} is not an IP address or host name")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"  # noqa: S104 - operator's choice

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _listen_host(host: str) -> bool:
    """Empty (every interface), an IPv4 or IPv6 address (IPv6 in brackets) or an RFC 1123 host name."""
    if not host:
        return True
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(literal).version == 6 or literal == host
    except ValueError:
        pass
    labels = host.split(".")
    named = literal == host and len(host) <= 253 and not labels[-1].isdigit()
    return named and all(_HOST_LABEL.fullmatch(label) for label in labels)


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class SpoolConfig(_Strict):
    """Where runs wait when the database cannot take them (see the reliability page)."""

    directory: Path | None = None
    """Default: ``<database file>.spool`` beside a SQLite database, ``./spool`` in the working directory for
    PostgreSQL. ``chain-head.json`` here holds the last chain head seen."""
    max_bytes: int = Field(default=256 << 20, ge=1 << 16, le=1 << 40)
    """When a new run does not fit, the oldest spooled runs are given up, each logged and counted."""


class CheckpointConfig(_Strict):
    """Signed checkpoints of the chain head, written to a sink outside the database."""

    destination: str = Field(min_length=1)
    """A directory (files are created once and never rewritten)."""
    every: Duration = timedelta(minutes=5)
    sign_key_file: Path | None = None
    sign_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The name of an environment variable holding the PEM (never the key itself)."""

    @model_validator(mode="after")
    def _one_key(self) -> CheckpointConfig:
        if (self.sign_key_file is None) == (self.sign_key_env is None):
            raise ValueError("give exactly one of sign_key_file (a PEM file) or sign_key_env (a variable's name)")
        if self.every < timedelta(seconds=1):
            raise ValueError("every must be at least 1s")
        return self


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
    narratives: Path | None = None
    """A YAML file of control narratives for export reports, over the shipped ones (docs/exports.md)."""
    log: LogConfig = LogConfig()
    freshness: FreshnessConfig = FreshnessConfig()
    shutdown_grace: Duration = timedelta(seconds=30)
    spool: SpoolConfig = SpoolConfig()
    checkpoints: CheckpointConfig | None = None
    clock_skew_tolerance: Duration = timedelta(minutes=5)
    """How far a source's ``observed_at`` may run ahead of the collection time before the run records a problem
    (freshness never counts from later than the collection time, whatever this is)."""
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

    @field_validator("clock_skew_tolerance")
    @classmethod
    def _skew_in_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= _MAX_CLOCK_SKEW:
            limit, given = format_duration(_MAX_CLOCK_SKEW), format_duration(value)
            raise ValueError(f"clock_skew_tolerance must be between 0s and {limit}, got {given}")
        return value

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
    clock_skew_tolerance: timedelta = timedelta(minutes=5)
    """The configuration's top-level ``clock_skew_tolerance``."""

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
        """Evidence kinds the configured connectors produce, given their settings."""
        return frozenset(
            kind for inst in self.instances for kind in inst.build().produced_kinds() & inst.connector_cls.kinds
        )

    def instance(self, name: str) -> ResolvedInstance:
        for inst in self.instances:
            if inst.config.name == name:
                return inst
        known = ", ".join(i.config.name for i in self.instances) or "none"
        raise ConfigurationError(f"no connector named {name!r} in the configuration (configured: {known})")


@dataclass
class _Source:
    """The configuration file as read: its label, YAML node tree, values after ``${VAR}`` interpolation."""

    path: Path | None
    node: yaml.Node | None
    raw: dict[str, Any]
    interpolated: dict[tuple[str | int, ...], list[str]]
    """Where a value came (partly) from ``${VAR}``: its location and the variables."""
    unset: dict[tuple[str | int, ...], list[str]]
    """Where a ``${VAR}`` without a default names a variable that is not set."""

    @property
    def label(self) -> str:
        return str(self.path) if self.path else "(defaults)"

    @property
    def base_dir(self) -> Path | None:
        return Path(os.path.abspath(self.path)).parent if self.path is not None else None

    def at(self, loc: tuple[str | int, ...]) -> str:
        """Where a value at ``loc`` came from: an environment variable if one supplied it, else file and line."""
        override = _env_override(loc)
        if override is not None:
            return f"environment variable {override}"
        inside: list[str] = []
        for where, names in self.interpolated.items():
            if loc[: len(where)] == where:
                return "environment variable " + ", ".join(names)
            if loc and where[: len(loc)] == loc:
                inside += names
        line = yaml_line_of(self.node, loc)
        at = f"{self.label}:{line}" if line else self.label
        return f"{at} (with environment variable {', '.join(inside)})" if inside else at

    def problem(self, loc: tuple[str | int, ...], message: str) -> str:
        return f"{self.at(loc)}: {_fmt(loc)}: {message.removeprefix('Value error, ')}"


_ENV_PREFIX = AppConfig.model_config.get("env_prefix", "")
_ENV_NESTING = AppConfig.model_config.get("env_nested_delimiter") or "__"


def _env_override(loc: tuple[str | int, ...]) -> str | None:
    """The ``EVIDENCE_COLLECTOR_...`` variable that overrides the value at ``loc``, if one is set."""
    present = {name.upper(): name for name in os.environ}
    for end in range(len(loc), 0, -1):
        candidate = (_ENV_PREFIX + _ENV_NESTING.join(str(part) for part in loc[:end])).upper()
        if candidate in present:
            return present[candidate]
    return None


def _interpolate(value: Any, loc: tuple[str | int, ...], source: _Source) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), source) for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                source.interpolated.setdefault(loc, []).append(name)
                return os.environ[name]
            if default is not None:
                return default
            source.unset.setdefault(loc, []).append(name)
            return ""

        return _ENV_REF.sub(substitute, value)
    return value


def _fmt(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _read(path: Path | None) -> _Source:
    """Read and parse the file (fatal if it cannot be) and expand ``${VAR}`` references."""
    raw: Any = {}
    node: yaml.Node | None = None
    if path is not None:
        try:
            raw, node = read_yaml(path)
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: no such configuration file") from None
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read configuration: {exc.strerror or exc}") from exc
        except YamlError as exc:
            raise ConfigurationError(str(exc)) from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{path}: the configuration must be a mapping at the top level")
    source = _Source(path, node, {}, {}, {})
    source.raw = _interpolate(raw, (), source)
    return source


def _validate_app(source: _Source, problems: list[str]) -> tuple[AppConfig | None, AppConfig | None]:
    """The whole configuration if valid, and a partial one (without the failing top-level sections) to keep
    checking the rest against; every problem found is appended."""
    problems += [
        f"{source.label}:{yaml_line_of(source.node, loc)}: {_fmt(loc)}: environment variable {name} is not set"
        for loc, names in source.unset.items()
        for name in names
    ]
    try:
        app = AppConfig(**source.raw)
    except ValidationError as exc:
        failing: set[str | int] = set()
        for err in exc.errors():
            loc = tuple(err["loc"])
            failing.add(loc[0] if loc else "")
            if any(loc[: len(u)] == u for u in source.unset):
                continue
            problems.append(source.problem(loc, err["msg"]))
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        variable = _env_override((field.group(1),)) if field else None
        where = f"environment variable {variable}: {field.group(1)}" if variable and field else "environment"
        problems.append(f"{where}: not valid JSON ({exc})")
        return None, None
    else:
        app = _with_absolute_paths(app, source.base_dir)
        return app, app
    try:
        partial = AppConfig(**{k: v for k, v in source.raw.items() if k not in failing})
    except (ValidationError, SettingsError):
        return None, None
    return None, _with_absolute_paths(partial, source.base_dir)


def _local(path: Path, base: Path) -> Path:
    return Path(resolve_local_path(str(path), base))


def _with_absolute_paths(app: AppConfig, base: Path | None) -> AppConfig:
    """Relative paths in the file (SQLite database, mappings, export key files and directories) resolve
    against the file's directory, as connector settings typed ``LocalPath`` do. The default database
    (``sqlite:///evidence.db``, when the file names none) stays in the working directory: a config file is often
    mounted read-only (``/etc/evidence-collector`` in the image) while the working directory is the data volume."""
    if base is None:
        return app
    from sqlalchemy.engine import make_url

    database_url = app.database.url
    url = make_url(database_url)
    written = "database" in app.model_fields_set and "url" in app.database.model_fields_set
    if (
        written
        and url.get_backend_name() == "sqlite"
        and url.database
        and url.database != ":memory:"
        and "uri" not in url.query
    ):
        database_url = url.set(database=resolve_local_path(url.database, base)).render_as_string(hide_password=False)
    exports = [
        export.model_copy(
            update={
                "destination": resolve_local_path(export.destination, base),
                "sign_key_file": None if export.sign_key_file is None else _local(export.sign_key_file, base),
            }
        )
        for export in app.exports
    ]
    spool = app.spool
    if spool.directory is not None:
        spool = spool.model_copy(update={"directory": _local(spool.directory, base)})
    checkpoints = app.checkpoints
    if checkpoints is not None:
        checkpoints = checkpoints.model_copy(
            update={
                "destination": resolve_local_path(checkpoints.destination, base),
                "sign_key_file": None if checkpoints.sign_key_file is None else _local(checkpoints.sign_key_file, base),
            }
        )
    return app.model_copy(
        update={
            "spool": spool,
            "checkpoints": checkpoints,
            "database": app.database.model_copy(update={"url": database_url}),
            "mappings": None if app.mappings is None else _local(app.mappings, base),
            "narratives": None if app.narratives is None else _local(app.narratives, base),
            "exports": exports,
        }
    )


def load_config(path: Path | None) -> tuple[AppConfig, yaml.Node | None]:
    """Parse and validate the file itself (not yet the connectors' settings)."""
    source = _read(path)
    problems: list[str] = []
    app, _partial = _validate_app(source, problems)
    if problems or app is None:
        raise ConfigurationError("\n".join(problems))
    return app, source.node


def _connector_entries(source: _Source, app: AppConfig | None) -> list[tuple[int, str, Any, ConnectorInstance | None]]:
    """Each connector's index, type and raw settings: from the validated config, else as written."""
    if app is not None:
        return [(i, c.type, c.settings, c) for i, c in enumerate(app.connectors)]
    entries = source.raw.get("connectors")
    if not isinstance(entries, list):
        return []
    return [
        (i, entry["type"], entry.get("settings", {}), None)
        for i, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("type"), str)
    ]


def load_and_resolve(path: Path | None) -> LoadedConfig:
    """Load the file, the mappings and every connector's settings; report every problem at once."""
    source = _read(path)
    problems: list[str] = []
    warnings: list[str] = []
    app, partial = _validate_app(source, problems)
    mappings: Mappings | None = None
    try:
        mappings = load_mappings(partial.mappings if partial and partial.mappings else default_mappings_dir())
    except MappingError as exc:
        problems.append(f"mappings: {exc}")
    context = {CONFIG_DIR_CONTEXT: source.base_dir}
    instances: list[ResolvedInstance] = []
    for i, type_name, raw_settings, inst in _connector_entries(source, app):
        base = ("connectors", i)
        try:
            cls = load_connector(type_name)
        except LookupError as exc:
            problems.append(source.problem((*base, "type"), str(exc)))
            continue
        warnings += _credentials_in_urls(raw_settings, (*base, "settings"), source)
        if app is not None and isinstance(raw_settings, dict) and "clock_skew_tolerance" in cls.Settings.model_fields:
            # the top-level tolerance is every connector's default; a connector's own setting wins
            raw_settings = {"clock_skew_tolerance": app.clock_skew_tolerance, **raw_settings}
        try:
            settings = cls.Settings.model_validate(raw_settings, context=context)
        except ValidationError as exc:
            problems += [source.problem((*base, "settings", *err["loc"]), err["msg"]) for err in exc.errors()]
            continue
        if mappings is not None:
            unmapped = sorted(k for k in cls.kinds if k not in mappings.kinds)
            if unmapped:
                problems.append(source.problem(base, f"evidence kinds without a mapping: {unmapped}"))
        digest = content_sha256({"type": type_name, "settings": redact_urls_in(settings.model_dump(mode="json"))})
        if inst is not None and inst.enabled and app is not None:
            instances.append(ResolvedInstance(inst, cls, settings, digest, app.clock_skew_tolerance))
    overrides: dict[ControlRef, FreshnessPolicy] = {}
    if mappings is not None and partial is not None:
        for text, policy in partial.freshness.overrides.items():
            try:
                for ref in mappings.resolve(text):
                    overrides[ref] = policy
            except (LookupError, ValueError) as exc:
                problems.append(source.problem(("freshness", "overrides", text), str(exc)))
        problems += _export_problems(partial.exports, mappings, source)
    if problems or mappings is None or app is None:
        raise ConfigurationError("\n".join(problems))
    return LoadedConfig(path, app, mappings, instances, overrides, warnings)


def _credentials_in_urls(value: Any, loc: tuple[str | int, ...], source: _Source) -> list[str]:
    """A URL in a connector's settings should not carry credentials: they are redacted wherever the URL is
    stored or printed, but a secret setting is the one place they are meant to be. A warning, not an error:
    such a configuration works and leaks nothing. The database URL is exempt (drivers read the password there;
    it is never stored, and printed masked)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _credentials_in_urls(v, (*loc, k), source)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _credentials_in_urls(v, (*loc, i), source)]
    if not isinstance(value, str) or "://" not in value or not (found := url_credentials(value)):
        return []
    message = (
        f"the URL carries credentials ({', '.join(found)}); put credentials in the connector's secret settings"
        " (basic auth username/password, token, or their _env forms), not in the URL"
    )
    return [source.problem(loc, message)]


def _export_problems(exports: list[ExportSchedule], mappings: Mappings, source: _Source) -> list[str]:
    """Each scheduled export's framework and controls must be in the loaded catalogs."""
    problems = []
    for i, export in enumerate(exports):
        if export.framework not in mappings.catalogs:
            known = ", ".join(mappings.frameworks())
            message = f"unknown framework {export.framework!r} (known: {known})"
            problems.append(source.problem(("exports", i, "framework"), message))
            continue
        for j, text in enumerate(export.controls):
            loc = ("exports", i, "controls", j)
            try:
                refs = mappings.resolve(text if ":" in text else f"{export.framework}:{text}")
            except (LookupError, ValueError) as exc:
                problems.append(source.problem(loc, str(exc)))
                continue
            if any(ref.framework != export.framework for ref in refs):
                message = f"{text!r} is not a control of the exported framework {export.framework!r}"
                problems.append(source.problem(loc, message))
    return problems
