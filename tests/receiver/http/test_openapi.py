"""The OpenAPI document: the app's real routes, valid OpenAPI 3, and the answers it describes are the real ones."""

from __future__ import annotations

import base64
import copy
import time
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from hypothesis import given, strategies as st
from ingestion import METRIC_VIEWS
from redis.asyncio import Redis

from receiver.app import create_app
from receiver.appkeys import INCIDENT_ANALYSIS
from receiver.incidents import IncidentAnalysis, is_incident_id
from receiver.http.metrics import WindowParams
from receiver.http.openapi import INCIDENT_ID_PATTERN, TOKEN_SETTINGS, openapi_document
from receiver.settings import Settings
from tests.support.settings import with_settings
from tests.support.records import body, line

from tests.support.incidents import FakeAnalysis, eventually, ok_report, payload

DOC = openapi_document()
AT = "2026-03-02T09:15:00Z"
PARAMETER_VALUES = {"window": "15", "at": AT, "backend": "api", "limit": "5", "minutes": "10",
                    "route": "POST /api/checkout"}
TOKENS = {"ingest_token": "ingest-secret", "analyze_token": "analyze-secret", "webhook_token": "webhook-secret",
          "read_token": "read-secret"}


def documented_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOC["paths"].items() for method in item}


def schema_of(path: str, method: str, status: int, kind: str = "application/json") -> jsonschema_rs.Validator:
    schema = DOC["paths"][path][method]["responses"][str(status)]["content"][kind]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": DOC["components"]})


def assert_documented(path: str, method: str, status: int, value: Any) -> None:
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in schema_of(path, method, status).iter_errors(value)]
    assert not errors, f"{method.upper()} {path} {status} is not as documented:\n" + "\n".join(errors)


def references(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["$ref"]} if isinstance(value.get("$ref"), str) else set()
        return found.union(*(references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(references(v) for v in value))
    return set()


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = DOC
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_document_lists_exactly_the_routes_of_the_app(settings, fake_redis) -> None:
    app = create_app(settings, redis=fake_redis)
    # The pages under /ui are for browsers, not part of the API the document describes.
    routes = {(route.method.lower(), route.resource.canonical)
              for route in app.router.routes() if route.method != "HEAD" and route.resource is not None
              and not route.resource.canonical.startswith("/ui")}

    assert documented_operations() == routes


def test_every_reference_resolves_and_every_schema_is_used() -> None:
    used = references(DOC["paths"])
    for pointer in sorted(used):
        resolve(pointer)
    for pointer in sorted(references(DOC["components"])):
        resolve(pointer)
    schemas = {f"#/components/schemas/{name}" for name in DOC["components"]["schemas"]}
    reachable = set(used)
    frontier = set(used)
    while frontier:
        frontier = references([resolve(p) for p in frontier]) - reachable
        reachable |= frontier
    assert schemas <= reachable, f"unused schemas: {sorted(schemas - reachable)}"


def test_every_operation_answers_a_documented_success_and_its_errors_as_json() -> None:
    for path, item in DOC["paths"].items():
        for method, operation in item.items():
            statuses = operation["responses"]
            assert any(s.startswith("2") for s in statuses), f"{method} {path}"
            for status, answer in statuses.items():
                assert answer["content"], f"{method} {path} {status}"
                assert "X-Request-ID" in answer["headers"]
                if status.startswith("4") and path != "/logs":
                    assert answer["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/ErrorBody"}, f"{method} {path} {status}"


def test_the_document_is_valid_openapi_3() -> None:
    assert DOC["openapi"].startswith("3.")
    schemathesis.openapi.from_dict(copy.deepcopy(DOC)).validate()


def test_the_validity_check_rejects_a_broken_document() -> None:
    broken = copy.deepcopy(DOC)
    del broken["paths"]["/health"]["get"]["responses"]["200"]["description"]

    with pytest.raises(jsonschema_rs.ValidationError, match="description"):
        schemathesis.openapi.from_dict(broken).validate()


@given(st.from_regex(INCIDENT_ID_PATTERN, fullmatch=True))
def test_the_documented_incident_id_is_what_the_service_accepts(ident: str) -> None:
    assert is_incident_id(ident)


@pytest.fixture
async def client(aiohttp_client, settings, fake_redis):
    return await aiohttp_client(create_app(settings, redis=fake_redis))


async def test_served_at_openapi_json(client) -> None:
    response = await client.get("/openapi.json")

    assert response.status == 200
    assert response.content_type == "application/json"
    assert orjson.loads(await response.read()) == orjson.loads(orjson.dumps(DOC))


@pytest.mark.parametrize(("path", "names"), [(view.path, view.parameters) for view in METRIC_VIEWS])
async def test_metric_views_take_exactly_the_documented_query_parameters(client, path: str, names) -> None:
    documented = {p["name"] for p in DOC["paths"][path]["get"]["parameters"]}
    assert documented == set(names)
    for name in WindowParams.model_fields:
        response = await client.get(path, params={name: PARAMETER_VALUES[name]})
        expected = 200 if name in documented else 422
        assert response.status == expected, (name, await response.text())


async def test_metric_views_with_traffic_answer_as_documented(client) -> None:
    now = time.time() - 1
    lines = [line(now, status=200, ta=20), line(now, status=503, ta=3000, term="SC--", backend="web"),
             line(now, status=404, path="/api/missing"), line(now, status=200, tw=15, srv_queue=2)]
    response = await client.post("/logs", data=body(*lines, "not a log line"),
                                 headers={"Content-Type": "text/plain"})
    assert response.status == 202
    assert_documented("/logs", "post", 202, await response.json())

    for path, names in ((view.path, view.parameters) for view in METRIC_VIEWS):
        for query in ({}, {"backend": "api"} if "backend" in names else {}):
            response = await client.get(path, params=query)
            assert response.status == 200
            assert_documented(path, "get", 200, await response.json())

    response = await client.get("/health")
    assert_documented("/health", "get", 200, await response.json())


@pytest.mark.parametrize(("data", "kind", "status"), [
    ("not a log line\n", "text/plain", 400),
    ("", "text/plain", 400),
    ('{"status_code": "x"}', "application/json", 422),
    ('[{"status_code": "x"}]', "application/json", 422),
    ("{", "application/json", 400),
    ('{"status_code": 1}\n', "application/x-ndjson", 422),
])
async def test_rejected_batches_answer_as_documented(client, data: str, kind: str, status: int) -> None:
    response = await client.post("/logs", data=data, headers={"Content-Type": kind})

    assert response.status == status
    assert_documented("/logs", "post", status, await response.json())


async def test_analysis_answers_as_documented(client) -> None:
    for request in ({"at": AT, "window_minutes": 15, "backend": "api"}, {"postmortem": True}):
        response = await client.post("/analyze", json=request)
        assert response.status == 200
        assert_documented("/analyze", "post", 200, await response.json())


async def test_the_protected_operations_are_the_documented_ones(aiohttp_client, settings, fake_redis) -> None:
    app = create_app(with_settings(settings, **TOKENS), redis=fake_redis)
    client = await aiohttp_client(app)
    secrets = {setting: TOKENS[setting.lower()] for setting in TOKEN_SETTINGS.values()}

    for method, path in sorted(documented_operations()):
        url = path.replace("{id}", "inc-20260101-0123abcd")
        response = await client.request(method, url, data=b"{}", headers={"Content-Type": "application/json"})
        operation = DOC["paths"][path][method]
        if (method, path) not in TOKEN_SETTINGS:
            assert "security" not in operation
            assert response.status != 401, (method, path)
            continue
        assert response.status == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_documented(path, method, 401, await response.json())
        assert {"bearerToken": []} in operation["security"] and {} in operation["security"]

        secret = secrets[TOKEN_SETTINGS[(method, path)]]
        basic = base64.b64encode(f"alertmanager:{secret}".encode()).decode()
        for authorization in (f"Bearer {secret}", f"Basic {basic}"):
            response = await client.request(method, url, data=b"{}", headers={
                "Content-Type": "application/json", "Authorization": authorization})
            assert response.status != 401, (method, path, authorization)


@pytest.mark.integration
async def test_incidents_answer_as_documented(real_redis: Redis, settings: Settings, aiohttp_client) -> None:
    app = create_app(with_settings(settings, run_worker=True), redis=real_redis)
    app[INCIDENT_ANALYSIS] = IncidentAnalysis(analyse=FakeAnalysis(delay=0.01), recheck=FakeAnalysis(ok_report()))
    client = await aiohttp_client(app)

    response = await client.post("/alerts", json=payload("backend-5xx-firing"))
    assert response.status == 200
    assert_documented("/alerts", "post", 200, await response.json())

    async def listed():
        rows = await (await client.get("/incidents")).json()
        return rows if rows and rows[0]["diagnosed_at"] else None

    [row] = await eventually(listed)
    assert_documented("/incidents", "get", 200, [row])
    open_incident = await (await client.get(f"/incidents/{row['id']}")).json()
    assert_documented("/incidents/{id}", "get", 200, open_incident)

    response = await client.post("/alerts", json=payload("backend-5xx-resolved"))
    assert response.status == 200

    async def resolved():
        detail = await (await client.get(f"/incidents/{row['id']}")).json()
        return detail if detail["status"] == "resolved" and detail["recheck"] else None

    assert_documented("/incidents/{id}", "get", 200, await eventually(resolved))
    response = await client.get(f"/incidents/{row['id']}/postmortem")
    assert response.status == 200
    assert response.content_type in DOC["paths"]["/incidents/{id}/postmortem"]["get"]["responses"]["200"]["content"]
