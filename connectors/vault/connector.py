"""The ``vault`` connector: a Vault/OpenBao server's configuration, read from metadata endpoints only.

Yields ``vault.server`` (health, seal, HA, audit devices, root tokens), one ``vault.auth_method`` per auth mount,
one ``vault.secret_engine`` per secrets mount and one ``vault.policy`` per ACL policy. No secret is ever read: KV
engines are read through their ``config`` endpoint, tokens through their accessors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from collector.sdk import CollectContext, ConfigurationError, Connector, Observation, Subject, redact_url

from .api import Denied, NotFound, VaultClient
from .checks import AUTH_KIND, CHECKS, ENGINE_KIND, POLICY_KIND, SERVER_KIND
from .policies import PolicyError, broad_grants, parse_policy
from .settings import VaultSettings

__all__ = ["VaultConnector"]

_NEEDS = {
    "sys/auth": "read on sys/auth",
    "sys/mounts": "read on sys/mounts",
    "sys/policies/acl": "list on sys/policies/acl",
    "sys/audit": "read and sudo on sys/audit",
    "auth/token/accessors": "list and sudo on auth/token/accessors",
}


def _denied(exc: Denied) -> str:
    base = exc.path.split("?")[0]
    capability = {"GET": "read", "LIST": "list", "POST": "update", "PUT": "update"}.get(exc.method, exc.method)
    need = next((n for p, n in _NEEDS.items() if base == p), None) or f"{capability} on {base}"
    return f"permission denied: {exc.method} /v1/{base} (the token needs {need})"


def _seconds(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class VaultConnector(Connector[VaultSettings]):
    type = "vault"
    version = "0.1.0"
    Settings = VaultSettings
    kinds = frozenset({SERVER_KIND, AUTH_KIND, ENGINE_KIND, POLICY_KIND})
    checks = CHECKS

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        client = VaultClient(self.settings)
        try:
            client.login()
            yield from self._collect(client, ctx)
        finally:
            client.close()

    def _collect(self, client: VaultClient, ctx: CollectContext) -> Iterator[Observation]:
        source = redact_url(self.settings.address)
        server = urlsplit(self.settings.address).netloc + (
            f"/{self.settings.namespace}" if self.settings.namespace else ""
        )
        try:
            self_token = client.get("auth/token/lookup-self")["data"]
        except Denied:
            raise ConfigurationError(f"vault at {source}: the token was refused (auth/token/lookup-self)") from None

        def observe(kind: str, subject: str, payload: dict[str, Any]) -> Observation:
            return Observation(kind, Subject(kind.replace(".", "_"), f"{server}/{subject}"), ctx.now, payload, source)

        yield observe(SERVER_KIND, "server", self._server(client, self_token, ctx))
        for path, mount in sorted(self._required(client, "sys/auth").items()):
            ctx.raise_if_cancelled()
            yield observe(AUTH_KIND, path, self._mount(client, f"sys/mounts/auth/{path}tune", path, mount))
        for path, mount in sorted(self._required(client, "sys/mounts").items()):
            ctx.raise_if_cancelled()
            payload = self._mount(client, f"sys/mounts/{path}tune", path, mount)
            if payload["type"] == "kv":
                payload["kv"] = self._kv(client, path, mount)
            yield observe(ENGINE_KIND, path, payload)
        for name in self._policy_names(client):
            ctx.raise_if_cancelled()
            yield observe(POLICY_KIND, name, self._policy(client, name))

    def _required(self, client: VaultClient, path: str) -> dict[str, Any]:
        """A listing the evidence cannot do without: permission denied stops the run as a configuration error."""
        try:
            answer = client.get(path)
        except Denied as exc:
            raise ConfigurationError(f"vault: {_denied(exc)}") from None
        data = answer.get("data") if isinstance(answer.get("data"), dict) else answer
        return {k: v for k, v in data.items() if k.endswith("/") and isinstance(v, dict)}

    def _server(self, client: VaultClient, self_token: dict[str, Any], ctx: CollectContext) -> dict[str, Any]:
        health = client.call("GET", "sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200")
        seal = client.get("sys/seal-status")
        leader = _optional(lambda: client.get("sys/leader"))
        policies = sorted(self_token.get("policies") or [])
        return {
            "version": health.get("version"),
            "cluster_name": health.get("cluster_name"),
            "initialized": health.get("initialized"),
            "sealed": seal.get("sealed"),
            "standby": health.get("standby"),
            "seal_type": seal.get("type"),
            "seal_threshold": seal.get("t"),
            "seal_shares": seal.get("n"),
            "storage_type": seal.get("storage_type"),
            "ha_enabled": leader.get("ha_enabled") if isinstance(leader, dict) else None,
            "collector_token": {
                "policies": policies,
                "root": "root" in policies,
                "creation_ttl_seconds": _seconds(self_token.get("creation_ttl")),
                "expire_time": self_token.get("expire_time"),
            },
            "audit_devices": self._audit(client, ctx),
            "root_tokens": self._root_tokens(client, ctx) if self.settings.check_root_tokens else None,
        }

    def _audit(self, client: VaultClient, ctx: CollectContext) -> dict[str, Any]:
        try:
            answer = client.get("sys/audit")
        except Denied as exc:
            ctx.problem("sys/audit", _denied(exc))
            return {"readable": False, "reason": _denied(exc), "devices": []}
        data = answer.get("data") if isinstance(answer.get("data"), dict) else answer
        devices = [
            {
                "path": path,
                "type": device.get("type"),
                "local": device.get("local"),
                "description": device.get("description") or "",
            }
            for path, device in sorted(data.items())
            if path.endswith("/") and isinstance(device, dict)
        ]
        return {"readable": True, "devices": devices}

    def _root_tokens(self, client: VaultClient, ctx: CollectContext) -> dict[str, Any]:
        try:
            accessors = client.list("auth/token/accessors")
        except Denied as exc:
            ctx.problem("auth/token/accessors", _denied(exc))
            return {"readable": False, "reason": _denied(exc), "tokens": []}
        if len(accessors) > self.settings.max_token_accessors:
            reason = f"{len(accessors)} token accessors, above max_token_accessors {self.settings.max_token_accessors}"
            return {"readable": False, "reason": reason, "tokens": []}
        roots = []
        for accessor in accessors:
            try:
                data = client.call("POST", "auth/token/lookup-accessor", {"accessor": accessor})["data"]
            except NotFound:  # revoked between the listing and the lookup
                continue
            except Denied as exc:
                ctx.problem("auth/token/lookup-accessor", _denied(exc))
                return {"readable": False, "reason": _denied(exc), "tokens": []}
            if "root" in (data.get("policies") or []):
                roots.append(
                    {
                        "display_name": data.get("display_name"),
                        "creation_time": data.get("creation_time"),
                        "expire_time": data.get("expire_time"),
                        "path": data.get("path"),
                    }
                )
        roots.sort(key=lambda t: (str(t["creation_time"]), str(t["display_name"])))
        return {"readable": True, "accessors_seen": len(accessors), "tokens": roots}

    def _mount(self, client: VaultClient, tune_path: str, path: str, mount: dict[str, Any]) -> dict[str, Any]:
        options = _object(mount.get("options"))
        payload: dict[str, Any] = {
            "path": path,
            "type": mount.get("type"),
            "description": mount.get("description") or "",
            "local": mount.get("local"),
            "seal_wrap": mount.get("seal_wrap"),
            "options_version": options.get("version"),
            "token_type": (mount.get("config") or {}).get("token_type"),
        }
        try:
            tune = client.get(tune_path)
        except Denied as exc:
            payload["ttl"] = {"readable": False, "reason": _denied(exc)}
            return payload
        except (NotFound, ConfigurationError) as exc:  # a mount the server will not tune (sys/, identity/)
            payload["ttl"] = {"readable": False, "reason": f"GET /v1/{tune_path}: {exc}"}
            return payload
        data = tune.get("data") if isinstance(tune.get("data"), dict) else tune
        payload["ttl"] = {
            "readable": True,
            "default_lease_ttl_seconds": _seconds(data.get("default_lease_ttl")),
            "max_lease_ttl_seconds": _seconds(data.get("max_lease_ttl")),
        }
        return payload

    def _kv(self, client: VaultClient, path: str, mount: dict[str, Any]) -> dict[str, Any]:
        options = _object(mount.get("options"))
        if str(options.get("version", "1")) != "2":
            return {"version": 1}
        try:
            config = client.get(f"{path}config")
        except Denied as exc:
            return {"version": 2, "readable": False, "reason": _denied(exc)}
        except NotFound:
            return {"version": 2, "readable": False, "reason": f"no {path}config endpoint"}
        data = config.get("data") or {}
        return {
            "version": 2,
            "readable": True,
            "max_versions": data.get("max_versions"),
            "delete_version_after": data.get("delete_version_after"),
            "cas_required": data.get("cas_required"),
        }

    def _policy_names(self, client: VaultClient) -> list[str]:
        try:
            return sorted(client.list("sys/policies/acl"))
        except Denied as exc:
            raise ConfigurationError(f"vault: {_denied(exc)}") from None

    def _policy(self, client: VaultClient, name: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": name, "privileged": name in self.settings.privileged_policies}
        try:
            text = client.get(f"sys/policies/acl/{name}")["data"].get("policy") or ""
        except Denied as exc:
            return {**payload, "readable": False, "reason": _denied(exc)}
        try:
            rules = parse_policy(text)
        except PolicyError as exc:
            return {**payload, "readable": False, "reason": str(exc)}
        grants = broad_grants(rules)
        if name == "root":  # built in, no text: it grants everything
            grants = [
                {"path": "*", "capabilities": ["root"], "reasons": ["the built-in root policy grants everything"]}
            ]
        return {
            **payload,
            "readable": True,
            "rules": [{"path": r.path, "capabilities": list(r.capabilities)} for r in rules],
            "broad_grants": grants,
        }


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _optional(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except (Denied, NotFound):
        return None
