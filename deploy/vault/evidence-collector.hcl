# Least-privilege policy for the evidence collector's `vault` connector (HashiCorp Vault or OpenBao).
# Metadata only: no path below returns a secret value. Write it with
#   bao policy write evidence-collector deploy/vault/evidence-collector.hcl   (or: vault policy write ...)
# and issue the collector a token (or an AppRole) holding only this policy.

# Its own token (the default policy grants this too).
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Auth methods and secret engines, with their effective TTLs.
path "sys/auth" {
  capabilities = ["read"]
}
# (sys/auth/<path>/tune needs sudo; the same answer under sys/mounts/auth/ does not)
path "sys/mounts/auth/+/tune" {
  capabilities = ["read"]
}
path "sys/mounts" {
  capabilities = ["read"]
}
path "sys/mounts/+/tune" {
  capabilities = ["read"]
}

# KV v2 engine settings (max_versions, delete_version_after): the config endpoint only, never data/ or metadata/.
path "+/config" {
  capabilities = ["read"]
}

# ACL policies (names and text: policies hold paths, not secrets).
path "sys/policies/acl" {
  capabilities = ["list"]
}
path "sys/policies/acl/*" {
  capabilities = ["read"]
}

# Audit devices: Vault requires sudo to list them.
path "sys/audit" {
  capabilities = ["read", "sudo"]
}

# Root tokens: list accessors (sudo) and look each up. An accessor lookup returns the token's policies and
# times, never the token itself. Drop these two paths (and set check_root_tokens: false) to go without.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}
path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# HA leader (unauthenticated on most servers; listed for servers that require a token).
path "sys/leader" {
  capabilities = ["read"]
}
