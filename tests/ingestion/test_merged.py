"""A window's sum: settled minutes plus the live ones, without changing what the cache holds."""

from __future__ import annotations

from ingestion.buckets import BackendAgg, FrontendAgg, PathAgg
from ingestion.reading import Merged


def minute(n: int, routes: dict[tuple[str, str], int], peak: int) -> Merged:
    merged = Merged(n=n)
    merged.codes["200"] = n
    merged.backend_counts["api"] = n
    merged.frontends["fe"] = FrontendAgg(n=n)
    merged.backends["api"] = BackendAgg()
    merged.backends["api"].n = n
    for key, count in routes.items():
        merged.paths[key] = PathAgg(n=count)
    merged.maxima["actconn"] = peak
    return merged


def test_the_settled_part_plus_the_live_minutes_is_their_sum_and_changes_none_of_them() -> None:
    settled = minute(10, {("api", "GET /a"): 6, ("api", "GET /b"): 4}, peak=7)
    live = [minute(3, {("api", "GET /a"): 2, ("api", "GET /c"): 1}, peak=9),
            minute(2, {("api", "GET /c"): 2}, peak=1)]
    whole = settled.plus(live)

    expected = Merged()
    for part in (settled, *live):
        expected.add(part)
    assert whole == expected
    assert {key: agg.n for key, agg in whole.paths.items()} == {("api", "GET /a"): 8, ("api", "GET /b"): 4,
                                                                ("api", "GET /c"): 3}
    assert whole.maxima == {"actconn": 9} and whole.backends["api"].n == 15 and whole.frontends["fe"].n == 15
    # The parts, which the reader's cache keeps, are as they were.
    assert settled.paths[("api", "GET /a")].n == 6 and settled.n == 10 and settled.maxima == {"actconn": 7}
    assert live[0].paths[("api", "GET /c")].n == 1 and live[1].paths[("api", "GET /c")].n == 2
