"""A store with real collected evidence (the demo scan reports) and the web app over it, for the web tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.registry import CollectorRegistry

from collector.config import LoadedConfig, load_and_resolve
from collector.coverage import basis_for_config
from collector.daemon import load_state
from collector.metrics import EvidenceMetrics
from collector.runner import Runner
from collector.state import State
from collector.store import Store
from collector.web import Sources, build_app, web_context
from collector.web.auth import token_sha256

ROOT = Path(__file__).resolve().parent.parent
TOKENS = {"viewer": "ec_test-viewer-token", "attester": "ec_test-attester-token", "admin": "ec_test-admin-token"}


def write_config(directory: Path, port: int = 0, extra_http: str = "") -> Path:
    reports = directory / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "deploy" / "demo" / "reports").glob("*.json"):
        shutil.copy(f, reports / f.name)
    tokens = "\n".join(
        f"      - {{name: {role}-user, role: {role}, sha256: {token_sha256(token)}}}" for role, token in TOKENS.items()
    )
    config = directory / "config.yaml"
    config.write_text(
        f"""
database: {{url: "sqlite:///{directory / "e.db"}"}}
http:
  listen: "127.0.0.1:{port}"
{extra_http}
  auth:
    tokens:
{tokens}
connectors:
  - name: scans
    type: container_scan
    schedule: {{interval: 1h}}
    settings: {{paths: ["{reports}/*.json"]}}
"""
    )
    return config


def collect(config: Path) -> LoadedConfig:
    loaded = load_and_resolve(config)
    store = Store(loaded.app.database.url)
    store.upgrade()
    runner = Runner(store, State(), loaded.mappings)
    for inst in loaded.instances:
        runner.run(inst)
    store.dispose()
    return loaded


@dataclass
class WebApp:
    app: Any
    store: Store
    state: State
    loaded: LoadedConfig


def web_app(loaded: LoadedConfig) -> WebApp:
    store = Store(loaded.app.database.url)
    state = State()
    load_state(store, state)
    basis = basis_for_config(loaded)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EvidenceMetrics(state, loaded.mappings, loaded.overrides, coverage=basis))
    sources = Sources(loaded, state, store, basis)
    app = build_app(registry, lambda: (True, "ready"), web_context(sources, loaded.app.http.auth))
    return WebApp(app, store, state, loaded)


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}
