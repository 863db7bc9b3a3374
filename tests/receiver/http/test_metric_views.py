"""The table of metric views: each row is a query, and becomes a route, an OpenAPI path and a read tool."""

from __future__ import annotations

import inspect
import json
import time
import typing
from datetime import datetime, timezone

import pytest

from agents.tools import READ_TOOLS, Toolbox
from ingestion import METRIC_VIEWS, MetricsQueries, MetricView
from receiver.app import create_app
from receiver.appkeys import QUERIES
from receiver.http.metrics import WindowParams
from receiver.http.openapi import REF, openapi_document
from tests.support.records import body, line

DOC = openapi_document()
TOOL_VIEWS = [view for view in METRIC_VIEWS if view.agent_tool]


def by_name(views):
    return pytest.mark.parametrize("view", views, ids=[view.name for view in views])


def test_names_and_paths_are_unique_and_http_bounds_every_parameter_a_view_takes() -> None:
    assert len({view.name for view in METRIC_VIEWS}) == len({view.path for view in METRIC_VIEWS}) == len(METRIC_VIEWS)
    assert set(WindowParams.model_fields) == {name for view in METRIC_VIEWS for name in view.parameters}


@by_name(METRIC_VIEWS)
def test_each_view_is_a_query_answering_with_its_model(view: MetricView) -> None:
    query = getattr(MetricsQueries, view.name)
    assert typing.get_type_hints(query)["return"] is view.model
    assert set(view.parameters) <= set(inspect.signature(query).parameters)


@pytest.fixture
async def client(aiohttp_client, settings, fake_redis):
    client = await aiohttp_client(create_app(settings, redis=fake_redis))
    now = time.time() - 1
    lines = [line(now, status=200, ta=20), line(now, status=503, ta=3000, term="SC--", backend="web")]
    response = await client.post("/logs", data=body(*lines), headers={"Content-Type": "text/plain"})
    assert response.status == 202
    return client


async def test_the_metric_routes_are_the_views_and_answer_with_their_models(client) -> None:
    routes = {route.resource.canonical for route in client.app.router.routes()
              if route.method == "GET" and route.resource.canonical.startswith("/metrics/")}
    assert routes == {view.path for view in METRIC_VIEWS}

    for view in METRIC_VIEWS:
        response = await client.get(view.path)
        assert response.status == 200, view.path
        assert view.model.model_validate(await response.json()).model_dump()


@by_name(METRIC_VIEWS)
def test_each_view_is_documented_with_its_summary_parameters_and_model(view: MetricView) -> None:
    operation = DOC["paths"][view.path]["get"]

    assert operation["summary"] == view.summary
    assert [parameter["name"] for parameter in operation["parameters"]] == list(view.parameters)
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": REF.format(model=view.model.__name__)}


def test_the_read_tools_are_the_views_offered_to_the_agents() -> None:
    assert list(READ_TOOLS) == [view.name for view in TOOL_VIEWS]


@by_name(TOOL_VIEWS)
def test_each_tool_takes_the_views_parameters_and_says_what_it_reads(view: MetricView) -> None:
    tool = READ_TOOLS[view.name]

    assert set(tool.args.model_fields) == set(view.parameters)
    assert tool.description.startswith(view.summary)


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


async def test_each_tool_answers_what_its_route_answers(client) -> None:
    at = datetime.now(timezone.utc)
    toolbox = Toolbox(client.app[QUERIES], tuple(READ_TOOLS), window_minutes=5, at=at, backend=None,
                      timeout_seconds=10)

    for view in TOOL_VIEWS:
        answer = await toolbox.call(view.name, {})
        data = json.loads(answer.removeprefix("<metrics>\n").removesuffix("\n</metrics>"))
        response = await client.get(view.path, params={"at": at.isoformat()})
        assert data == without_nulls(await response.json()), view.name
