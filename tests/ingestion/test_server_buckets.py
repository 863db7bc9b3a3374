"""Per-server figures of a minute, from real HAProxy lines: what they count, store and fold into."""

from __future__ import annotations

from datetime import timezone

import pytest

from ingestion.buckets import OTHER, SEP, BackendAgg, MinuteBucket, ServerAgg
from ingestion.httplog import parse_httplog_line

# Lines as HAProxy 2.6 writes them with the default `option httplog`.
LINES = (
    '10.0.0.1:40001 [25/Nov/2026:16:33:01.000] fe_http~ web/web-1 0/0/1/40/45 200 900 - - ---- '
    '3/3/2/1/0 0/0 "GET / HTTP/1.1"',
    '10.0.0.1:40002 [25/Nov/2026:16:33:02.000] fe_http~ web/web-1 0/0/1/10/15 404 150 - - ---- '
    '3/3/2/1/0 0/0 "GET /nope HTTP/1.1"',
    '10.0.0.2:40003 [25/Nov/2026:16:33:03.000] fe_http~ web/web-2 0/0/-1/-1/1504 503 217 - - SC-- '
    '3/3/2/1/3 0/0 "GET / HTTP/1.1"',
    '10.0.0.2:40004 [25/Nov/2026:16:33:04.000] fe_http~ web/web-2 0/0/-1/-1/1506 503 217 - - SC-- '
    '3/3/2/1/3 0/0 "GET /products/7 HTTP/1.1"',
    '10.0.0.3:40005 [25/Nov/2026:16:33:05.000] fe_http~ web/web-3 0/0/1/2000/2003 504 198 - - sH-- '
    '3/3/2/1/0 0/0 "GET /account HTTP/1.1"',
    '10.0.0.3:40006 [25/Nov/2026:16:33:06.000] fe_http~ web/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- '
    '3/3/2/0/0 0/0 "GET / HTTP/1.1"',
    '10.0.0.4:40007 [25/Nov/2026:16:33:07.000] fe_http api/api-1 0/0/0/5/-1 200 900 - - CD-- '
    '3/1/1/1/0 0/0 "GET /api/items/1 HTTP/1.1"',
)


def bucket(lines=LINES) -> MinuteBucket:
    out = MinuteBucket()
    for line in lines:
        out.add(parse_httplog_line(line, timezone.utc))
    return out


def row(agg: ServerAgg) -> tuple:
    return agg.n, agg.e4, agg.e5, agg.lat_sum, agg.lat_n, dict(agg.codes), dict(agg.terms)


@pytest.mark.parametrize("backend, server, want", [
    ("web", "web-1", (2, 1, 0, 60, 2, {"404": 1}, {})),
    ("web", "web-2", (2, 0, 2, 3010, 2, {"503": 2}, {"SC": 2})),
    ("web", "web-3", (1, 0, 1, 2003, 1, {"504": 1}, {"sH": 1})),
    ("web", "<NOSRV>", (1, 0, 1, 0, 1, {"503": 1}, {"SC": 1})),
    # No Ta (-1): counted, but not in the mean; a 200 cut by the client is abnormal, not an error.
    ("api", "api-1", (1, 0, 0, 0, 0, {}, {"CD": 1})),
])
def test_each_server_counts_its_requests_errors_latency_and_abnormal_endings(backend, server, want):
    assert row(bucket().backends[backend].servers[server]) == want


def test_server_figures_survive_the_hash_they_are_stored_in():
    agg = bucket().backends["web"]
    odd = ServerAgg(n=3, e5=1, codes={"502": 1}, terms={"SH": 1})
    agg.servers["a:b c\tSEP:n"] = odd  # any name a sender may give, tabs and colons included
    back = BackendAgg.from_fields({name: str(value) for name, value in agg.fields()})
    assert {name: row(s) for name, s in back.servers.items()} == {name: row(s) for name, s in agg.servers.items()}
    assert (back.n, back.e4, back.e5, dict(back.codes)) == (agg.n, agg.e4, agg.e5, dict(agg.codes))


def test_merging_minutes_adds_server_figures():
    first, second = bucket(), bucket(LINES[2:4])
    first.merge(second)
    assert row(first.backends["web"].servers["web-2"]) == (4, 0, 4, 6020, 4, {"503": 4}, {"SC": 4})
    assert row(second.backends["web"].servers["web-2"])[0] == 2, "the merged-in minute is left as it was"


def test_folding_maps_servers_codes_and_states_and_keeps_every_request():
    original = bucket()
    folded = original.renamed({}, {}, {}, {"504": OTHER}, {"sH": OTHER},
                              {"web" + SEP + "web-3": OTHER, "web" + SEP + "<NOSRV>": OTHER})
    servers = folded.backends["web"].servers
    assert set(servers) == {"web-1", "web-2", OTHER}
    assert row(servers[OTHER]) == (2, 0, 2, 2003, 2, {OTHER: 1, "503": 1}, {OTHER: 1, "SC": 1})
    assert sum(s.n for s in servers.values()) == folded.backends["web"].n == 6
    assert "web-3" in original.backends["web"].servers, "the bucket folded is left as it was"


def test_a_folded_backend_takes_its_servers_along():
    folded = bucket().renamed({"api": OTHER}, {}, {}, {}, {})
    assert row(folded.backends[OTHER].servers["api-1"])[0] == 1
