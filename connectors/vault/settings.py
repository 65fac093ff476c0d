"""Settings of the ``vault`` connector (HashiCorp Vault or OpenBao: the same HTTP API)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from collector.sdk import ConnectorSettings, Duration

__all__ = ["AppRoleLogin", "VaultSettings"]


class AppRoleLogin(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role_id: str = Field(min_length=1)
    secret_id: SecretStr
    mount: str = Field(default="approle", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class VaultSettings(ConnectorSettings):
    address: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """``https://vault.example.com:8200``: the API is under ``/v1``."""
    token: SecretStr | None = None
    approle: AppRoleLogin | None = None
    namespace: str | None = None
    """Vault Enterprise / OpenBao namespace, sent as ``X-Vault-Namespace``."""
    ca_bundle: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_token_ttl: Duration = timedelta(hours=24)
    """``vault.token_ttls_bounded`` fails for an auth method whose tokens may live longer (effective max TTL)."""
    max_lease_ttl: Duration = timedelta(days=32)
    """``vault.token_ttls_bounded`` also judges secret engines' effective max lease TTL against this."""
    require_ha: bool = False
    """``vault.server_healthy`` fails on a server without HA storage."""
    privileged_policies: list[str] = ["root"]
    """Policies allowed to grant ``sudo`` or wildcard paths (reported, not failed)."""
    check_root_tokens: bool = True
    """List token accessors (needs ``sudo`` on ``auth/token/accessors``) and look each up for the root policy."""
    max_token_accessors: int = Field(default=10_000, gt=0)

    @model_validator(mode="after")
    def _one_login(self) -> VaultSettings:
        if (self.token is None) == (self.approle is None):
            raise ValueError("give exactly one of token or approle")
        if self.max_token_ttl <= timedelta(0) or self.max_lease_ttl <= timedelta(0):
            raise ValueError("max_token_ttl and max_lease_ttl must be positive")
        return self
