"""Per-minute aggregates: built from records, written as hash fields, read back and merged.

The same classes serve both directions so that what is written is exactly what is read.
Everything here is pure: no Redis, no clock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .bounds import KNOWN_STATES
from .histogram import bucket_index, le_index
from .paths import normalise_path
from .records import LogRecord

OTHER = "__other__"
SEP = "\t"
# A few requests kept whole per minute and backend, failures first, then the slowest: what a person
# would grep the logs for. Never the client's address, nor the query string (the route is normalised).
SAMPLES_PER_BACKEND = 5
SLOW_SAMPLE_MS = 1000
_FAILED_SAMPLE = 10_000_000  # added to a 5xx's score, above any Ta


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


@dataclass(slots=True)
class ServerAgg:
    """One server of a backend in one minute: what tells a failing server from its healthy peers."""

    n: int = 0
    e4: int = 0
    e5: int = 0
    lat_sum: int = 0  # ms (Ta)
    lat_n: int = 0
    codes: Counter = field(default_factory=Counter)  # error (4xx/5xx) codes only
    terms: Counter = field(default_factory=Counter)  # abnormal states only (not "--")

    def fields(self, prefix: str) -> Iterable[tuple[str, int]]:
        yield prefix + "n", self.n
        for name, value in (("4", self.e4), ("5", self.e5), ("ls", self.lat_sum), ("ln", self.lat_n)):
            if value:
                yield prefix + name, value
        for code, count in self.codes.items():
            yield prefix + "c:" + code, count
        for term, count in self.terms.items():
            yield prefix + "t:" + term, count

    def add_field(self, name: str, count: int) -> None:
        """Add one stored field (the inverse of `fields`)."""
        attr = _SERVER_SCALARS.get(name)
        if attr is not None:
            setattr(self, attr, getattr(self, attr) + count)
            return
        kind, _, rest = name.partition(":")
        if kind == "c":
            self.codes[rest] += count
        elif kind == "t":
            self.terms[rest] += count

    def merge(self, other: "ServerAgg") -> None:
        self.n += other.n
        self.e4 += other.e4
        self.e5 += other.e5
        self.lat_sum += other.lat_sum
        self.lat_n += other.lat_n
        self.codes.update(other.codes)
        self.terms.update(other.terms)


_SERVER_SCALARS = {"n": "n", "4": "e4", "5": "e5", "ls": "lat_sum", "ln": "lat_n"}
# A server's fields in its backend's hash: "s:<server>" SEP "<stat>". The stat never holds SEP,
# so splitting at the last one gives back any server name.
SERVER_FIELD = "s:"


@dataclass(slots=True)
class BackendAgg:
    n: int = 0
    e4: int = 0
    e5: int = 0
    codes: Counter = field(default_factory=Counter)
    terms: Counter = field(default_factory=Counter)
    hist: Counter = field(default_factory=Counter)  # log-linear bucket -> count (Ta)
    le: Counter = field(default_factory=Counter)  # `le` bucket -> count (Ta)
    lat_sum: int = 0  # ms, over requests with a Ta
    queued: int = 0
    retries: int = 0
    tw_sum: int = 0
    tw_n: int = 0
    tc_sum: int = 0
    tc_n: int = 0
    tr_sum: int = 0
    tr_n: int = 0
    # Peaks within the minute, written to the minute's sorted set rather than the hash.
    max_beconn: int = 0
    max_srv_conn: int = 0
    max_srv_queue: int = 0
    max_backend_queue: int = 0
    servers: dict[str, ServerAgg] = field(default_factory=dict)

    def fields(self) -> Iterable[tuple[str, int]]:
        yield "n", self.n
        for name, value in (("4", self.e4), ("5", self.e5), ("ls", self.lat_sum), ("q", self.queued),
                            ("r", self.retries), ("tws", self.tw_sum), ("twn", self.tw_n),
                            ("tcs", self.tc_sum), ("tcn", self.tc_n), ("trs", self.tr_sum), ("trn", self.tr_n)):
            if value:
                yield name, value
        for code, count in self.codes.items():
            yield f"c:{code}", count
        for term, count in self.terms.items():
            yield f"t:{term}", count
        for index, count in self.hist.items():
            yield f"h:{index}", count
        for index, count in self.le.items():
            yield f"e:{index}", count
        for server, agg in self.servers.items():
            yield from agg.fields(SERVER_FIELD + server + SEP)

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> "BackendAgg":
        agg = cls()
        scalar = _BACKEND_SCALARS
        for name, value in raw.items():
            count = int(value)
            attr = scalar.get(name)
            if attr is not None:
                setattr(agg, attr, count)
                continue
            prefix, _, rest = name.partition(":")
            if prefix == "h":
                agg.hist[int(rest)] = count
            elif prefix == "e":
                agg.le[int(rest)] = count
            elif prefix == "c":
                agg.codes[rest] = count
            elif prefix == "t":
                agg.terms[rest] = count
            elif prefix == "s":
                server, _, stat = rest.rpartition(SEP)
                found = agg.servers.get(server)
                if found is None:
                    found = agg.servers[server] = ServerAgg()
                found.add_field(stat, count)
        return agg

    def merge(self, other: "BackendAgg") -> None:
        for attr in _BACKEND_SCALARS.values():
            setattr(self, attr, getattr(self, attr) + getattr(other, attr))
        self.codes.update(other.codes)
        self.terms.update(other.terms)
        self.hist.update(other.hist)
        self.le.update(other.le)
        self.max_beconn = max(self.max_beconn, other.max_beconn)
        self.max_srv_conn = max(self.max_srv_conn, other.max_srv_conn)
        self.max_srv_queue = max(self.max_srv_queue, other.max_srv_queue)
        self.max_backend_queue = max(self.max_backend_queue, other.max_backend_queue)
        for name, agg in other.servers.items():
            _merge_into(self.servers, name, agg, ServerAgg)


_BACKEND_SCALARS = {
    "n": "n", "4": "e4", "5": "e5", "ls": "lat_sum", "q": "queued", "r": "retries",
    "tws": "tw_sum", "twn": "tw_n", "tcs": "tc_sum", "tcn": "tc_n", "trs": "tr_sum", "trn": "tr_n",
}


@dataclass(slots=True)
class PathAgg:
    n: int = 0
    classes: Counter = field(default_factory=Counter)  # "2xx" -> count
    codes: Counter = field(default_factory=Counter)  # error codes only
    lat_sum: int = 0
    lat_n: int = 0
    le: Counter = field(default_factory=Counter)

    def fields(self, prefix: str) -> Iterable[tuple[str, int]]:
        yield prefix + "n", self.n
        if self.lat_sum:
            yield prefix + "ls", self.lat_sum
        if self.lat_n:
            yield prefix + "ln", self.lat_n
        for cls, count in self.classes.items():
            yield prefix + "k:" + cls, count
        for code, count in self.codes.items():
            yield prefix + "c:" + code, count
        for index, count in self.le.items():
            yield prefix + "e:" + str(index), count

    def add_field(self, name: str, count: int) -> None:
        """Add one stored field (the inverse of `fields`)."""
        if name == "n":
            self.n += count
        elif name == "ls":
            self.lat_sum += count
        elif name == "ln":
            self.lat_n += count
        else:
            kind, _, rest = name.partition(":")
            if kind == "k":
                self.classes[rest] += count
            elif kind == "c":
                self.codes[rest] += count
            elif kind == "e":
                self.le[int(rest)] += count

    def merge(self, other: "PathAgg") -> None:
        self.n += other.n
        self.lat_sum += other.lat_sum
        self.lat_n += other.lat_n
        self.classes.update(other.classes)
        self.codes.update(other.codes)
        self.le.update(other.le)


@dataclass(slots=True)
class FrontendAgg:
    n: int = 0
    e4: int = 0
    e5: int = 0

    def merge(self, other: "FrontendAgg") -> None:
        self.n += other.n
        self.e4 += other.e4
        self.e5 += other.e5


# Members of a minute's peak set that belong to a backend: "<prefix>:<backend>".
BACKEND_MAXIMA = ("bc", "sc", "sq", "bq")
_STATUS_INFO: dict[int, tuple[str, str]] = {}


@dataclass(slots=True)
class MinuteBucket:
    """Everything known about one minute of traffic."""

    n: int = 0
    codes: Counter = field(default_factory=Counter)
    frontends: dict[str, FrontendAgg] = field(default_factory=dict)
    backends: dict[str, BackendAgg] = field(default_factory=dict)
    paths: dict[tuple[str, str], PathAgg] = field(default_factory=dict)  # (backend, route)
    max_actconn: int = 0
    max_feconn: int = 0
    # `code_class` counts by (frontend, backend): the Prometheus counters.
    classes: Counter = field(default_factory=Counter)
    samples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # backend -> (score, sample)

    def add(self, r: LogRecord) -> None:
        # The hot path of ingestion: plain dict and attribute work only.
        status = r.status
        info = _STATUS_INFO.get(status)
        if info is None:
            info = _STATUS_INFO[status] = (str(status), status_class(status))
        code, cls = info
        backend = r.backend
        self.n += 1
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        key = (r.frontend, backend, cls)
        classes = self.classes
        classes[key] = classes.get(key, 0) + 1

        fe = self.frontends.get(r.frontend)
        if fe is None:
            fe = self.frontends[r.frontend] = FrontendAgg()
        fe.n += 1
        be = self.backends.get(backend)
        if be is None:
            be = self.backends[backend] = BackendAgg()
        be.n += 1
        be_codes = be.codes
        be_codes[code] = be_codes.get(code, 0) + 1
        term = r.termination_state[:2] or "--"
        if term not in KNOWN_STATES:
            term = OTHER
        terms = be.terms
        terms[term] = terms.get(term, 0) + 1
        srv = be.servers.get(r.server)
        if srv is None:
            srv = be.servers[r.server] = ServerAgg()
        srv.n += 1
        if term != "--":
            srv_terms = srv.terms
            srv_terms[term] = srv_terms.get(term, 0) + 1
        if cls == "4xx":
            fe.e4 += 1
            be.e4 += 1
            srv.e4 += 1
            srv_codes = srv.codes
            srv_codes[code] = srv_codes.get(code, 0) + 1
        elif cls == "5xx":
            fe.e5 += 1
            be.e5 += 1
            srv.e5 += 1
            srv_codes = srv.codes
            srv_codes[code] = srv_codes.get(code, 0) + 1
        ta = r.time_active
        if ta >= 0:
            srv.lat_sum += ta
            srv.lat_n += 1
            index = bucket_index(ta)
            hist = be.hist
            hist[index] = hist.get(index, 0) + 1
            le = le_index(ta)
            be_le = be.le
            be_le[le] = be_le.get(le, 0) + 1
            be.lat_sum += ta
        tw = r.time_queue
        if tw >= 0:
            be.tw_sum += tw
            be.tw_n += 1
        if tw > 0 or r.srv_queue > 0 or r.backend_queue > 0:
            be.queued += 1
        if r.time_connect >= 0:
            be.tc_sum += r.time_connect
            be.tc_n += 1
        if r.time_response >= 0:
            be.tr_sum += r.time_response
            be.tr_n += 1
        if r.retries:
            be.retries += r.retries
        if r.beconn > be.max_beconn:
            be.max_beconn = r.beconn
        if r.srv_conn > be.max_srv_conn:
            be.max_srv_conn = r.srv_conn
        if r.srv_queue > be.max_srv_queue:
            be.max_srv_queue = r.srv_queue
        if r.backend_queue > be.max_backend_queue:
            be.max_backend_queue = r.backend_queue
        if r.actconn > self.max_actconn:
            self.max_actconn = r.actconn
        if r.feconn > self.max_feconn:
            self.max_feconn = r.feconn

        route = r.method + " " + normalise_path(r.path)
        if cls == "5xx" or ta >= SLOW_SAMPLE_MS:
            self._sample(r, route, ta)
        pkey = (backend, route)
        p = self.paths.get(pkey)
        if p is None:
            p = self.paths[pkey] = PathAgg()
        p.n += 1
        p_classes = p.classes
        p_classes[cls] = p_classes.get(cls, 0) + 1
        if cls == "4xx" or cls == "5xx":
            p_codes = p.codes
            p_codes[code] = p_codes.get(code, 0) + 1
        if ta >= 0:
            p.lat_sum += ta
            p.lat_n += 1
            p_le = p.le
            p_le[le] = p_le.get(le, 0) + 1

    def _sample(self, r: LogRecord, route: str, ta: int) -> None:
        score = (_FAILED_SAMPLE if r.status >= 500 else 0) + min(max(ta, 0), _FAILED_SAMPLE - 1)
        kept = self.samples.setdefault(r.backend, [])
        if len(kept) >= SAMPLES_PER_BACKEND:
            lowest = min(range(len(kept)), key=lambda i: kept[i][0])
            if kept[lowest][0] >= score:
                return
            del kept[lowest]
        kept.append((score, sample_member(r, route)))

    def maxima(self) -> dict[str, int]:
        """Peak connection and queue figures, as the members of the minute's sorted set."""
        out = {"ac": self.max_actconn, "fc": self.max_feconn}
        for name, agg in self.backends.items():
            out["bc:" + name] = agg.max_beconn
            out["sc:" + name] = agg.max_srv_conn
            out["sq:" + name] = agg.max_srv_queue
            out["bq:" + name] = agg.max_backend_queue
        return out

    # -- reading back -------------------------------------------------------

    def merge(self, other: "MinuteBucket") -> None:
        self.n += other.n
        self.codes.update(other.codes)
        self.classes.update(other.classes)
        for name, agg in other.frontends.items():
            _merge_into(self.frontends, name, agg, FrontendAgg)
        for name, agg in other.backends.items():
            _merge_into(self.backends, name, agg, BackendAgg)
        for key, agg in other.paths.items():
            _merge_into(self.paths, key, agg, PathAgg)
        self.max_actconn = max(self.max_actconn, other.max_actconn)
        self.max_feconn = max(self.max_feconn, other.max_feconn)
        for name, kept in other.samples.items():
            self.samples[name] = best_samples([*self.samples.get(name, []), *kept])

    def renamed(self, backends: Mapping[str, str], frontends: Mapping[str, str], routes: Mapping[str, str],
                codes: Mapping[str, str], states: Mapping[str, str],
                servers: Mapping[str, str] | None = None) -> "MinuteBucket":
        """A copy with names, status codes and termination states mapped (cardinality folding); unmapped ones stay.

        `servers` maps "<backend>" SEP "<server>", by the backend's name before it is mapped.
        """
        out = MinuteBucket(n=self.n, codes=_renamed(self.codes, codes), max_actconn=self.max_actconn,
                           max_feconn=self.max_feconn)
        for (fe, be, cls), count in self.classes.items():
            out.classes[(frontends.get(fe, fe), backends.get(be, be), cls)] += count
        for name, agg in self.frontends.items():
            _merge_into(out.frontends, frontends.get(name, name), agg, FrontendAgg)
        for name, agg in self.backends.items():
            if codes or states or servers:
                agg = replace(agg, codes=_renamed(agg.codes, codes), terms=_renamed(agg.terms, states),
                              servers=_renamed_servers(name, agg.servers, servers or {}, codes, states))
            _merge_into(out.backends, backends.get(name, name), agg, BackendAgg)
        for (be, route), agg in self.paths.items():
            if codes:
                agg = replace(agg, codes=_renamed(agg.codes, codes))
            key = (backends.get(be, be), routes.get(route, route))
            _merge_into(out.paths, key, agg, PathAgg)
        for name, kept in self.samples.items():
            folded = backends.get(name, name)
            out.samples[folded] = best_samples([*out.samples.get(folded, []), *kept])
        return out


def best_samples(samples: list[tuple[int, str]]) -> list[tuple[int, str]]:
    return sorted(samples, key=lambda s: -s[0])[:SAMPLES_PER_BACKEND]


def sample_member(r: LogRecord, route: str) -> str:
    """One request as a compact JSON object: when, where, what it got, its timers and how it ended."""
    return json.dumps({
        "ts": round(r.ts, 3), "server": r.server[:200], "route": route[:300], "status": r.status,
        "ta": r.time_active, "tw": r.time_queue, "tc": r.time_connect, "tr": r.time_response,
        "state": r.termination_state[:4], "retries": r.retries,
    }, separators=(",", ":"), ensure_ascii=True)


def _renamed(counts: Counter, mapping: Mapping[str, str]) -> Counter:
    if not mapping:
        return counts
    out: Counter = Counter()
    for name, count in counts.items():
        out[mapping.get(name, name)] += count
    return out


def _renamed_servers(backend: str, servers: dict[str, ServerAgg], names: Mapping[str, str],
                     codes: Mapping[str, str], states: Mapping[str, str]) -> dict[str, ServerAgg]:
    out: dict[str, ServerAgg] = {}
    for server, agg in servers.items():
        if codes or states:
            agg = replace(agg, codes=_renamed(agg.codes, codes), terms=_renamed(agg.terms, states))
        _merge_into(out, names.get(backend + SEP + server, server), agg, ServerAgg)
    return out


def _merge_into(target: dict, key, agg, factory) -> None:
    mine = target.get(key)
    if mine is None:
        mine = target[key] = factory()
    mine.merge(agg)


def route_method(route: str) -> tuple[str, str]:
    method, _, path = route.partition(" ")
    return method, path
