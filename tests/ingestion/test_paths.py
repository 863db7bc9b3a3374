from __future__ import annotations

import pytest

from ingestion.paths import MAX_ROUTE_LENGTH, normalise_path


@pytest.mark.parametrize(
    ("path", "route"),
    [
        pytest.param("/", "/", id="root"),
        pytest.param("/api/items", "/api/items", id="plain"),
        pytest.param("/api/items?id=1&sort=asc", "/api/items", id="query dropped"),
        pytest.param("/docs/intro#install", "/docs/intro", id="fragment dropped"),
        pytest.param("/a#frag?not-a-query", "/a", id="fragment before question mark"),
        pytest.param("/api/items/123", "/api/items/{id}", id="numeric id"),
        pytest.param("/api/users/42/orders/981", "/api/users/{id}/orders/{id}", id="two ids"),
        pytest.param(
            "/api/users/550e8400-e29b-41d4-a716-446655440000",
            "/api/users/{id}",
            id="uuid",
        ),
        pytest.param("/api/users/550E8400-E29B-41D4-A716-446655440000", "/api/users/{id}", id="uuid upper"),
        pytest.param("/objects/507f1f77bcf86cd799439011", "/objects/{id}", id="hex object id"),
        pytest.param("/commits/3f9a8c2b", "/commits/{id}", id="short hex with digits"),
        pytest.param("/words/deadbeef", "/words/deadbeef", id="hex letters only stay"),
        pytest.param("/v/1a2b3c4", "/v/1a2b3c4", id="hex shorter than 8 stays"),
        pytest.param(
            "/reset/eyJhbGciOiJIUzI1NiJ9_aB3-xYz0",
            "/reset/{id}",
            id="opaque token",
        ),
        pytest.param(
            "/blog/a-rather-long-article-title-here",
            "/blog/a-rather-long-article-title-here",
            id="long slug without digits stays",
        ),
        pytest.param("/api/v2/items", "/api/v2/items", id="version segment stays"),
        pytest.param("/static/app.3f9a8c2b.js", "/static/app.3f9a8c2b.js", id="file name stays"),
        pytest.param("//api///items//", "/api/items", id="empty segments collapsed"),
        pytest.param("/api/items/", "/api/items", id="trailing slash dropped"),
        pytest.param("/?q=1", "/", id="root with query"),
        pytest.param("http://shop.example.com/cart/7?x=1", "/cart/{id}", id="absolute uri"),
        pytest.param("https://shop.example.com", "/", id="absolute uri without path"),
        pytest.param("-", "-", id="unparseable request"),
        pytest.param("", "-", id="empty"),
        pytest.param("*", "*", id="options asterisk"),
        pytest.param("shop.example.com:443", "shop.example.com:443", id="connect authority"),
    ],
)
def test_normalises_to_the_route(path: str, route: str) -> None:
    assert normalise_path(path) == route


def test_caps_the_length_of_a_route() -> None:
    route = normalise_path("/" + "/".join(f"section-{chr(97 + i % 26)}" for i in range(100)))
    assert len(route) == MAX_ROUTE_LENGTH
    assert route.startswith("/section-a/section-b/")


def test_paths_differing_only_in_ids_and_queries_share_a_route() -> None:
    paths = [f"/api/users/{n}/orders/{n * 7}?page={n}" for n in range(1, 500)]
    assert {normalise_path(p) for p in paths} == {"/api/users/{id}/orders/{id}"}
