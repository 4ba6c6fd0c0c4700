"""The API contract, checked by a schema-driven fuzzer (Schemathesis) over every route.

For each operation of the OpenAPI document, Schemathesis generates requests that fit the
schema (positive) and requests that break it (negative); each is sent twice, once as generated
(no or a random ``X-API-Key``) and once with the admin key, so that both the 401 side and the
inside of every admin route are fuzzed. Every response must be no 5xx, have a documented status
code, content type, headers and body schema; a schema-invalid request must not be accepted.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.main import create_app
from app.settings import Settings
from tests.fakes import FakeEncoder
from tests.helpers import copy_data_dir

KEY = "fuzz-admin-key-0123456789"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Examples per operation and mode: ~20 operations x 2 modes x 2 keys stays well under the
# ~3 minute budget on 2 cores while still reaching every parameter's edge values.
EXAMPLES = 80
STATS: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api_schema(
    tmp_path_factory: pytest.TempPathFactory, fake_ingested_dir: Path, fake_encoder: FakeEncoder
) -> schemathesis.BaseSchema:
    # a copy: the fuzzer saves profiles and judgements
    data = copy_data_dir(fake_ingested_dir, tmp_path_factory.mktemp("fuzz") / "data")
    settings = Settings(data_dir=data, admin_key=KEY, max_upload_mb=1.0)
    app = create_app(settings, encoder=fake_encoder)  # type: ignore[arg-type]
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_schema_reference_resolves(api_schema: schemathesis.BaseSchema) -> None:
    results = list(api_schema.get_all_operations())
    broken = [str(r.err()) for r in results if not isinstance(r, Ok)]
    assert not broken, broken
    labels = {r.ok().label for r in results}
    # every public and admin route is in the document (the pages are not: HTML)
    assert {"POST /v1/search", "GET /v1/admin/indexers", "POST /v1/judgements/import"} <= labels
    assert len(labels) >= 20


def _fuzz_operation(
    operation: schemathesis.APIOperation, mode: GenerationMode, failures: list[str]
) -> None:
    label = operation.label

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests on every CI run: a failure reproduces
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        for headers in (None, {"X-API-Key": KEY}):
            STATS["requests"] += 1
            try:
                response = case.call(headers=headers)
            except Exception as exc:  # the app raised: a 500 as far as a client can tell
                STATS["5xx"] += 1
                failures.append(f"{label}: raised {exc!r}\n{case.as_curl_command()}")
                return
            STATS[str(response.status_code)] += 1
            if response.status_code >= 500 and response.status_code != 503:
                STATS["5xx"] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{label}: {exc}\n{case.as_curl_command(headers=headers)}")
                return

    try:
        run()
    except Unsatisfiable:
        # nothing about this operation can be broken (no parameters, no body): nothing to send
        assert mode is GenerationMode.NEGATIVE, label
        STATS["operations without negative cases"] += 1


def _fuzz(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> list[str]:
    failures: list[str] = []
    for result in api_schema.get_all_operations():
        _fuzz_operation(result.ok(), mode, failures)
    return failures


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_keeps_its_contract(
    api_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    started = time.perf_counter()
    before = STATS["requests"]
    failures = _fuzz(api_schema, mode)
    print(
        f"\n{mode.value}: {STATS['requests'] - before} requests in "
        f"{time.perf_counter() - started:.0f} s; totals so far {dict(STATS)}"
    )
    assert STATS["requests"] - before >= 200  # the fuzzer really ran
    # one of each kind (operation, failed checks): the same fault is found many times
    distinct = {re.sub(r"(?s)\n\[\d+\].*", "", f): f for f in failures}
    assert not failures, f"{len(distinct)} distinct:\n\n" + "\n\n".join(distinct.values())
    assert STATS["5xx"] == 0
