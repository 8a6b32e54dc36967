"""API quality, against the running system: the OpenAPI schema covers every endpoint with camelCase
fields and its error responses, the docs page works offline, the browsable API renders every
endpoint, and a property-based fuzz generated from the schema (schemathesis) finds no 5xx and no
4xx without a JSON body that says what is wrong."""
from __future__ import annotations

import json
import logging
import re

import pytest
import schemathesis
from django.urls import get_resolver
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

pytestmark = pytest.mark.system
logging.getLogger("httpx").setLevel(logging.WARNING)
EXAMPLES_PER_OPERATION = 60  # bounded: about 20 operations, a few seconds each
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


@pytest.fixture(scope="module")
def openapi(system):
    response = system.http.get("/api/schema/", params={"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_covers_every_endpoint_with_camel_case_fields_and_errors(openapi):
    documented = {re.sub(r"\{[^}]+\}", "x", path).strip("/") for path in openapi["paths"]}
    served = set()
    for pattern in get_resolver().url_patterns:
        route = str(pattern.pattern).lstrip("^").removesuffix("/?$")
        if getattr(pattern, "callback", None) is not None and hasattr(pattern.callback, "cls"):
            served.add(re.sub(r"\(\?P<\w+>[^)]*\)", "x", route).strip("/"))
    assert served and served - {"api/docs", "api/schema"} <= documented, served - documented  # the schema's own pages
    for path, operations in openapi["paths"].items():
        assert all(CAMEL.match(p) for p in re.findall(r"\{([^}]+)\}", path)), path
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "403"} <= codes, (method, path)  # every endpoint takes ?format=
            if "{" in path:
                assert "404" in codes, (method, path)
    for name, component in openapi["components"]["schemas"].items():
        for field in component.get("properties", {}):
            assert CAMEL.match(field), f"{name}.{field} is not camelCase"


def test_the_docs_page_works_offline(system):
    page = system.http.get("/api/docs/")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets  # no CDN
    for asset in assets:
        assert system.http.get(asset).status_code == 200, asset


def test_the_browsable_api_renders_every_endpoint(system, openapi):
    system.grant("brow", 100)
    order = system.order("brow", 10)
    values = {"orderId": str(order["id"]), "userId": "brow"}
    for path, operations in openapi["paths"].items():
        if "get" not in operations:
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        params = {"orderId": order["id"]} if any(p["name"] == "orderId" and p["in"] == "query" for p in operations["get"].get("parameters", [])) else {}
        response = system.http.get(url, params=params, headers={"Accept": "text/html"})
        assert response.status_code == 200, (url, response.status_code, response.text[:500])
        assert response.headers["content-type"].startswith("text/html"), url


def explains_what_is_wrong(ctx, response, case):
    """Every 4xx answers JSON that names what is wrong: a detail, or field errors."""
    if not 400 <= response.status_code < 500:
        return None
    content_type = ", ".join(response.headers.get("content-type", response.headers.get("Content-Type", [])))
    assert "application/json" in content_type, f"{response.status_code} with {content_type!r}: {response.content[:200]!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and body, f"{response.status_code} with an empty body"
    for field, problem in body.items():
        messages = problem if isinstance(problem, list) else [problem]
        assert messages and all(isinstance(m, (str, dict, list)) and m for m in messages), (field, problem)
    return None


def fuzz(schema) -> int:
    """Valid and invalid inputs for every operation of `schema`, generated from it; bounded in
    examples (no shrinking, so a failure reports the example as found, quickly). The operations."""
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=False,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def one(case):
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance, explains_what_is_wrong])

        one()
    return len(operations)


def test_fuzz_no_server_error_and_every_4xx_says_what_is_wrong(system):
    schema = schemathesis.openapi.from_url(str(system.http.base_url).rstrip("/") + "/api/schema/?format=json")
    assert fuzz(schema) >= 15


def _query(*names):
    return [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in names]


def _answers(*codes):
    return {str(code): {"description": "JSON"} for code in codes}


def test_fuzz_the_dashboards_json(system):
    """The JSON behind the dashboard's pages (not part of the API, so not in its schema): described
    here as the pages call it, then fuzzed the same way: no 5xx, every 4xx a JSON reason."""
    described = {
        "openapi": "3.0.3", "info": {"title": "Sagaboard dashboard JSON", "version": "1"},
        "servers": [{"url": str(system.http.base_url).rstrip("/")}],
        "paths": {
            "/dashboard/board.json": {"get": {"parameters": _query("ids", "order", "page", "status", "holder"),
                                              "responses": _answers(200, 400)}},
            "/dashboard/sagas/{orderId}.json": {"get": {
                "parameters": [{"name": "orderId", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": _answers(200, 404)}},
            "/dashboard/services.json": {"get": {"parameters": _query("format"), "responses": _answers(200)}},
            "/dashboard/consistency.json": {"get": {"parameters": _query("orderId"), "responses": _answers(200)}},
        },
    }
    system.grant("fuzz", 100)
    system.order("fuzz", 10)
    schema = schemathesis.openapi.from_dict(described)
    schema.config.update(base_url=described["servers"][0]["url"])
    assert fuzz(schema) == 4
