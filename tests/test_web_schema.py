"""Schemathesis against the API's own OpenAPI document: every read operation, with generated (also negative and
boundary) inputs, as an admin: no 500, every response matches its schema. Bounded: a few examples each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.webapp import bearer, collect, web_app, write_config


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    app = web_app(collect(write_config(tmp_path_factory.mktemp("schema"))))
    yield schemathesis.openapi.from_asgi("/api/v1/openapi.json", app.app)
    app.store.dispose()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_every_read_operation_answers_within_its_schema(
    api_schema: schemathesis.BaseSchema, mode: schemathesis.GenerationMode
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    exercised = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=bearer("admin"))

        try:
            call()
        except Unsatisfiable:
            # no parameter to make invalid (/me, /connectors): nothing negative to send
            assert mode is schemathesis.GenerationMode.NEGATIVE
            continue
        exercised += 1
    assert exercised >= 6
