"""Who is asking, and may they: bearer tokens (kept as SHA-256), the console's cookie holding such a token, a
trusted proxy's identity header (only from the proxy's addresses), or the anonymous role when configured."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from collector.config import ApiToken, AuthConfig
from collector.errors import ConfigurationError
from collector.yamlfile import YamlError, read_yaml

__all__ = ["ROLES", "SESSION_COOKIE", "Authenticator", "Denied", "Identity", "allows", "token_sha256"]

ROLES = ("viewer", "attester", "admin")
"""Each role may do what the ones before it may."""
SESSION_COOKIE = "ec_session"

_TOKENS = TypeAdapter(list[ApiToken])


@dataclass(frozen=True, slots=True)
class Identity:
    principal: str
    role: str
    via: str
    """token, session, proxy or anonymous"""


class Denied(Exception):
    """The request is refused: 401 without (valid) credentials, 403 when they are not enough."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def allows(role: str, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


class Authenticator:
    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._file_state: tuple[float, int] | None = None
        self._file_tokens: list[ApiToken] = []
        if config.tokens_file is not None:
            self._reload_file()

    def _reload_file(self) -> list[ApiToken]:
        """The tokens file as last read; read again when its mtime or size changed (a rotated Secret)."""
        path = self.config.tokens_file
        if path is None:
            return []
        with self._lock:
            try:
                st = path.stat()
            except OSError as exc:
                raise ConfigurationError(f"http.auth.tokens_file {path}: {exc.strerror or exc}") from exc
            state = (st.st_mtime, st.st_size)
            if state != self._file_state:
                self._file_tokens = _read_tokens(path)
                self._file_state = state
            return self._file_tokens

    def _tokens(self) -> list[ApiToken]:
        return [*self.config.tokens, *self._reload_file()]

    def identify(self, client: str | None, headers: dict[str, str], cookie: str | None) -> Identity:
        """``headers``: lower-cased names. Raises :class:`Denied`."""
        proxy = self.config.proxy
        if proxy is not None:
            user = headers.get(proxy.user_header.lower())
            if user is not None:
                if not _from(client, proxy.trusted):
                    raise Denied(403, f"{proxy.user_header} is accepted only from the configured proxy addresses")
                role = proxy.roles.get(user, proxy.default_role)
                if role is None:
                    raise Denied(403, f"user {user!r} has no role")
                return Identity(user, role, "proxy")
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Denied(401, "Authorization must be 'Bearer <token>'")
            return self._by_token(token.strip(), "token")
        if cookie:
            return self._by_token(cookie, "session")
        if self.config.anonymous is not None:
            return Identity("anonymous", self.config.anonymous, "anonymous")
        raise Denied(401, "credentials required: a bearer token, or sign in to the console")

    def _by_token(self, token: str, via: str) -> Identity:
        digest = token_sha256(token)
        match = None
        for known in self._tokens():
            if hmac.compare_digest(known.sha256, digest):
                match = known
        if match is None:
            raise Denied(401, "unknown token")
        return Identity(match.name, match.role, via)


def _from(client: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _read_tokens(path: Path) -> list[ApiToken]:
    try:
        data, _node = read_yaml(path)
        return _TOKENS.validate_python(data or [])
    except (YamlError, OSError) as exc:
        raise ConfigurationError(f"http.auth.tokens_file {path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigurationError(f"http.auth.tokens_file {path}: {where}: {first['msg']}") from exc
