"""A small Vault/OpenBao HTTP client: metadata endpoints only, statuses classified once."""

from __future__ import annotations

from typing import Any

import requests

from collector.sdk import ConfigurationError, TransientError, call_with_retry, redact_url

from .settings import VaultSettings

__all__ = ["Denied", "NotFound", "VaultClient"]


class Denied(Exception):
    """HTTP 403: the token lacks a capability on the path."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"permission denied: {method} /v1/{path}")
        self.method = method
        self.path = path


class NotFound(Exception):
    """HTTP 404: nothing at the path (an engine without a config, an empty listing)."""


class VaultClient:
    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self.base = settings.address.rstrip("/") + "/v1/"
        self.session = requests.Session()
        if settings.namespace:
            self.session.headers["X-Vault-Namespace"] = settings.namespace
        self.session.verify = settings.ca_bundle or True
        self.token: str | None = settings.token.get_secret_value() if settings.token else None

    def close(self) -> None:
        self.session.close()

    def login(self) -> None:
        """AppRole login when configured; the token only ever lives in the session header."""
        approle = self.settings.approle
        if approle is not None:
            body = {"role_id": approle.role_id, "secret_id": approle.secret_id.get_secret_value()}
            try:
                answer = self.call("POST", f"auth/{approle.mount}/login", body, authenticated=False)
            except (Denied, NotFound, ConfigurationError) as exc:
                detail = str(exc).rpartition(": ")[2]
                raise ConfigurationError(f"vault AppRole login at auth/{approle.mount} was refused: {detail}") from None
            self.token = answer["auth"]["client_token"]
        if self.token is not None:
            self.session.headers["X-Vault-Token"] = self.token

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def list(self, path: str) -> list[str]:
        try:
            answer = self.call("LIST", path)
        except NotFound:  # Vault answers 404 for an empty listing
            return []
        keys = (answer.get("data") or {}).get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise TransientError(f"vault LIST /v1/{path}: the answer holds no list of keys")
        return keys

    def call(self, method: str, path: str, body: Any = None, *, authenticated: bool = True) -> Any:
        return call_with_retry(self._call, method, path, body, authenticated)

    def _call(self, method: str, path: str, body: Any, authenticated: bool) -> Any:
        url = self.base + path
        headers = {} if authenticated else {"X-Vault-Token": ""}
        try:
            response = self.session.request(
                method, url, json=body, headers=headers, timeout=self.settings.timeout_seconds
            )
        except requests.RequestException as exc:
            raise TransientError(f"vault {method} {redact_url(url)}: {type(exc).__name__}") from None
        status = response.status_code
        if status == 403:
            raise Denied(method, path)
        if status == 404:
            raise NotFound(path)
        if status == 401 or status == 400:
            raise ConfigurationError(f"vault {method} /v1/{path}: HTTP {status}: {_errors(response)}")
        if status == 429 or status >= 500:
            raise TransientError(f"vault {method} /v1/{path}: HTTP {status}: {_errors(response)}")
        if status == 204:
            return {}
        if status != 200:
            raise ConfigurationError(f"vault {method} /v1/{path}: unexpected HTTP {status}")
        try:
            answer = response.json()
        except ValueError:
            raise TransientError(f"vault {method} /v1/{path}: the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise TransientError(f"vault {method} /v1/{path}: the answer is not a JSON object")
        return answer


def _errors(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return response.reason or "no detail"
    if isinstance(errors, list) and errors:
        return "; ".join(str(e).strip().replace("\n", " ")[:200] for e in errors[:3])
    return response.reason or "no detail"
