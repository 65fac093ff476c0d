"""Pure judgements over ``vault.*`` observations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from collector.sdk import Check, CheckResult, Observation, Outcome, format_duration

from .settings import VaultSettings

__all__ = [
    "AUDIT_ENABLED",
    "AUTH_KIND",
    "CHECKS",
    "ENGINE_KIND",
    "LEASE_TTLS_BOUNDED",
    "NO_ROOT_TOKENS",
    "POLICY_KIND",
    "POLICY_LEAST_PRIVILEGE",
    "SERVER_HEALTHY",
    "SERVER_KIND",
    "TOKEN_TTLS_BOUNDED",
]

SERVER_KIND = "vault.server"
AUTH_KIND = "vault.auth_method"
ENGINE_KIND = "vault.secret_engine"
POLICY_KIND = "vault.policy"

_NO_LEASES = frozenset({"kv", "cubbyhole", "identity", "system", "transit", "pki", "ssh", "totp"})
"""Engines that issue no leased (dynamic) secrets: their lease TTL bounds nothing."""


def server_healthy(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    check_id = "vault.server_healthy"
    p = observation.payload
    if p["initialized"] is not True:
        return CheckResult(check_id, Outcome.FAIL, f"not initialized (initialized: {p['initialized']!r})")
    if p["sealed"] is not False:
        return CheckResult(check_id, Outcome.FAIL, f"sealed (sealed: {p['sealed']!r})")
    if settings.require_ha and p["ha_enabled"] is not True:
        return CheckResult(check_id, Outcome.FAIL, f"HA is required but not enabled (ha_enabled: {p['ha_enabled']!r})")
    ha = "HA enabled" if p["ha_enabled"] else "no HA"
    return CheckResult(check_id, Outcome.PASS, f"initialized and unsealed ({p['seal_type']} seal, {ha})")


def audit_enabled(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    check_id = "vault.audit_enabled"
    audit = observation.payload["audit_devices"]
    if not audit["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"audit devices unreadable: {audit['reason']}")
    devices = audit["devices"]
    if not devices:
        return CheckResult(check_id, Outcome.FAIL, "no audit device is enabled: requests are not logged")
    shown = ", ".join(f"{d['path']} ({d['type']})" for d in devices)
    return CheckResult(check_id, Outcome.PASS, f"{len(devices)} audit device(s): {shown}")


def no_root_tokens(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    check_id = "vault.no_root_tokens"
    p = observation.payload
    if p["collector_token"]["root"]:
        return CheckResult(check_id, Outcome.FAIL, "the collector itself runs with a root token")
    found = p["root_tokens"]
    if found is None:
        return CheckResult(check_id, Outcome.NOT_APPLICABLE, "check_root_tokens is off")
    if not found["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"token accessors unreadable: {found['reason']}")
    if found["tokens"]:
        names = ", ".join(sorted({str(t["display_name"]) for t in found["tokens"]}))
        return CheckResult(check_id, Outcome.FAIL, f"{len(found['tokens'])} root token(s) exist ({names})")
    return CheckResult(check_id, Outcome.PASS, f"none of {found['accessors_seen']} tokens holds the root policy")


def _ttl_check(check_id: str, payload: Mapping[str, Any], bound: timedelta, what: str) -> CheckResult:
    ttl = payload["ttl"]
    name = f"{payload['type']} at {payload['path']}"
    if not ttl["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"{name}: TTLs unreadable: {ttl['reason']}")
    seconds = ttl["max_lease_ttl_seconds"]
    if seconds is None or seconds == 0:
        return CheckResult(check_id, Outcome.ERROR, f"{name}: no effective max TTL in the tune answer ({seconds!r})")
    limit = int(bound.total_seconds())
    message = f"{name}: {what} live up to {format_duration(timedelta(seconds=seconds))} (max {format_duration(bound)})"
    details = {"max_lease_ttl_seconds": seconds, "bound_seconds": limit}
    return CheckResult(check_id, Outcome.PASS if seconds <= limit else Outcome.FAIL, message, details)


def token_ttls_bounded(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    return _ttl_check("vault.token_ttls_bounded", observation.payload, settings.max_token_ttl, "tokens")


def lease_ttls_bounded(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    payload = observation.payload
    if payload["type"] in _NO_LEASES:
        return CheckResult(
            "vault.lease_ttls_bounded",
            Outcome.NOT_APPLICABLE,
            f"{payload['type']} at {payload['path']} issues no leases",
        )
    return _ttl_check("vault.lease_ttls_bounded", payload, settings.max_lease_ttl, "leases")


def policy_least_privilege(observation: Observation, settings: VaultSettings, now: datetime) -> CheckResult:
    check_id = "vault.policy_least_privilege"
    p = observation.payload
    if not p["readable"]:
        return CheckResult(check_id, Outcome.ERROR, f"policy {p['name']}: {p['reason']}")
    grants = p["broad_grants"]
    if not grants:
        return CheckResult(check_id, Outcome.PASS, f"policy {p['name']}: no sudo and no wildcard over every mount")
    shown = "; ".join(f"{g['path']}: {', '.join(g['reasons'])}" for g in grants[:5])
    if p["privileged"]:
        return CheckResult(
            check_id, Outcome.NOT_APPLICABLE, f"policy {p['name']} is listed in privileged_policies ({shown})"
        )
    return CheckResult(check_id, Outcome.FAIL, f"policy {p['name']} grants broadly: {shown}", {"grants": len(grants)})


SERVER_HEALTHY: Check[VaultSettings] = Check(
    "vault.server_healthy", SERVER_KIND, "The server is initialized, unsealed (and HA when required)", server_healthy
)
AUDIT_ENABLED: Check[VaultSettings] = Check(
    "vault.audit_enabled", SERVER_KIND, "At least one audit device logs requests", audit_enabled
)
NO_ROOT_TOKENS: Check[VaultSettings] = Check(
    "vault.no_root_tokens", SERVER_KIND, "No token holds the root policy", no_root_tokens
)
TOKEN_TTLS_BOUNDED: Check[VaultSettings] = Check(
    "vault.token_ttls_bounded",
    AUTH_KIND,
    "Tokens issued by the auth method expire within the bound",
    token_ttls_bounded,
)
LEASE_TTLS_BOUNDED: Check[VaultSettings] = Check(
    "vault.lease_ttls_bounded", ENGINE_KIND, "Dynamic secrets expire within the bound", lease_ttls_bounded
)
POLICY_LEAST_PRIVILEGE: Check[VaultSettings] = Check(
    "vault.policy_least_privilege",
    POLICY_KIND,
    "The policy grants no sudo and no wildcard over every mount",
    policy_least_privilege,
)
CHECKS = (SERVER_HEALTHY, AUDIT_ENABLED, NO_ROOT_TOKENS, TOKEN_TTLS_BOUNDED, LEASE_TTLS_BOUNDED, POLICY_LEAST_PRIVILEGE)
