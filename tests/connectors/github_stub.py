"""A loopback GitHub REST stub whose every response body is validated against GitHub's published OpenAPI
description (npm ``@octokit/openapi``, installed by .ci/run), so the stub cannot drift from the real API."""

from __future__ import annotations

import copy
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

SPEC_ENV = "EVIDENCE_GITHUB_OPENAPI"
"""Path of ``api.github.com.json``; .ci/run sets it after ``npm install @octokit/openapi``."""
DEFAULT_SPEC = (
    Path(__file__).resolve().parents[2] / ".venv/npm/node_modules/@octokit/openapi/generated/api.github.com.json"
)
"""Where .ci/run installs the package (inside the ignored .venv of the checkout)."""


def spec_path() -> Path:
    path = Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC)
    if not path.is_file():
        message = (
            f"GitHub's OpenAPI description is not at {path}: run `npm install --prefix .venv/npm @octokit/openapi@23`"
            f" (bash .ci/run does) or set {SPEC_ENV}"
        )
        if os.environ.get("EVIDENCE_CI") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: the schema, or null."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass
class OpenApi:
    document: dict[str, Any]
    templates: list[tuple[re.Pattern[str], str]]

    def response_schema(self, method: str, path: str, status: int) -> dict[str, Any]:
        template = next((t for pattern, t in self.templates if pattern.fullmatch(path)), None)
        assert template is not None, f"{path} is not a path of GitHub's REST API"
        operation = self.document["paths"][template][method.lower()]
        response = operation["responses"].get(str(status))
        if response is None:
            # GitHub answers any request with a 403/429 basic-error (a missing scope, a rate limit) even where the
            # description lists only 200/404
            assert status >= 400, f"GET {template} has no documented HTTP {status}"
            return {"$ref": "urn:github#/components/schemas/basic-error"}
        if "$ref" in response:
            response = self.resolve(response["$ref"])
        schema = response["content"]["application/json"]["schema"]
        return _rebase(schema)

    def resolve(self, ref: str) -> Any:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def example(self, name: str) -> Any:
        value = self.document["components"]["examples"][name]["value"]
        return copy.deepcopy(value)

    def validate(self, method: str, path: str, status: int, body: Any) -> None:
        from jsonschema import Draft4Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        registry = _registry(id(self.document), self.document, Registry, Resource, DRAFT4)
        validator = Draft4Validator(self.response_schema(method, path, status), registry=registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path)
            raise AssertionError(
                f"stub body for {method} {path} ({status}) breaks GitHub's schema at {where}: {first.message[:300]}"
            )


_REGISTRIES: dict[int, Any] = {}


def _registry(key: int, document: dict[str, Any], registry: Any, resource: Any, draft: Any) -> Any:
    if key not in _REGISTRIES:
        _REGISTRIES[key] = registry().with_resource(
            "urn:github", resource.from_contents(document, default_specification=draft)
        )
    return _REGISTRIES[key]


def _rebase(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: ("urn:github" + v if k == "$ref" and v.startswith("#") else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


@cache
def load_openapi(path: str) -> OpenApi:
    document = json.loads(Path(path).read_text())
    document["components"]["schemas"] = _nullable_to_json_schema(document["components"]["schemas"])
    templates = []
    for template in document["paths"]:
        pattern = "".join(
            "[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", template)
        )
        templates.append((re.compile(pattern), template))
    # literal paths before templated ones, so /repos/{o}/{r}/rulesets/rule-suites is not a ruleset id
    templates.sort(key=lambda item: item[1].count("{"))
    return OpenApi(document, templates)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GitHubStub:
    """Routes keyed by (path, page); a route holds replies served in order, the last one repeated."""

    api: OpenApi
    url: str = ""
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def add(self, path: str, *replies: Reply, page: int = 1) -> None:
        for reply in replies:
            self.api.validate("GET", path, reply.status, reply.body)
        self.routes[(path, str(page))] = list(replies)

    def ok(self, path: str, body: Any, page: int = 1, **headers: str) -> None:
        self.add(path, Reply(200, body, headers), page=page)

    def link(self, path: str, page: int, last: int) -> str:
        return f'<{self.url}{path}?per_page=100&page={page}>; rel="next", <{self.url}{path}?page={last}>; rel="last"'

    def reply(self, raw_path: str) -> Reply:
        parts = urlsplit(raw_path)
        page = parse_qs(parts.query).get("page", ["1"])[0]
        self.requests.append(raw_path)
        queue = self.routes.get((parts.path, page))
        if queue is None:
            return Reply(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        return queue.pop(0) if len(queue) > 1 else queue[0]


def running_stub(api: OpenApi) -> Iterator[GitHubStub]:
    stub = GitHubStub(api)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.headers.get("Authorization", "").startswith("Bearer ")
            reply = stub.reply(self.path)
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
