"""HAProxy httplog traffic for a small shop, healthy or in one of a few incidents.

The lines are what HAProxy 2.6 would write for the site below, so that
everything downstream (ingestion, alerts, analysis) can be exercised without
production traffic. The simulated HAProxy runs with::

    timeout connect 500ms
    timeout server  2s
    retries 3

A scenario changes only what its incident changes; the rest of the site stays
healthy, as it would in real life.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from itertools import accumulate

from ingestion.records import LogRecord

SCENARIOS = (
    "baseline", "deploy-regression", "auth-regression", "outage", "traffic-spike",
    "backend-spike", "server-refusing", "latency-creep", "quiet-broken-backend",
)

CONNECT_TIMEOUT_MS = 500
SERVER_TIMEOUT_MS = 2000
MAX_RETRIES = 3
OUTAGE_MIN_MINUTES = 6
# The quiet backend's traffic, well under any alerting floor (a floor of 10 a minute is usual).
QUIET_REQUESTS_PER_MINUTE = 2.0
# How much slower the creeping backend is by the run's last minute; it gets there at a steady
# rate a minute, so that each minute is slower than the one before by the same ratio.
CREEP_FACTOR_AT_END = 6.0
# HAProxy waits min(timeout connect, 1s) before retrying a refused connection.
_RETRY_DELAY_MS = min(CONNECT_TIMEOUT_MS, 1000)


@dataclass(frozen=True, slots=True)
class ScenarioTimeline:
    """When a scenario's incident happens, so that alerts can be anchored to it."""

    scenario: str
    onset: datetime | None  # None: nothing happens
    end: datetime | None  # when it stops; the end of the run if it lasts
    backend: str | None  # where it shows, if on one backend
    symptom: str
    server: str | None = None  # the one server of `backend` at fault, if one is


def scenario_timeline(scenario: str, start: datetime, minutes: int) -> ScenarioTimeline:
    """The incident ``generate_lines(scenario, start=start, minutes=minutes, ...)`` contains."""
    _check_scenario(scenario, minutes)
    onset, end = _incident_minutes(scenario, minutes)
    backend, symptom = _SYMPTOMS[scenario]
    return ScenarioTimeline(
        scenario=scenario,
        onset=None if onset is None else start + timedelta(minutes=onset),
        end=None if end is None else start + timedelta(minutes=end),
        backend=backend,
        symptom=symptom,
        server=_SERVERS.get(scenario),
    )


def generate_lines(
    scenario: str,
    *,
    start: datetime,
    minutes: int,
    rps: float,
    seed: int = 0,
    tz: tzinfo = timezone.utc,
) -> Iterator[str]:
    """HAProxy httplog lines (bare, as with ``format raw``) in accept-date order.

    ``rps`` is the healthy request rate; dates are written in ``tz``, as an
    HAProxy host in that zone would. The same arguments give the same lines.

    Example::

        start = datetime(2026, 11, 25, 16, 0, tzinfo=timezone.utc)
        for line in generate_lines("deploy-regression", start=start, minutes=30, rps=50):
            ingest(line)
    """
    # Checked here rather than in the generator below, so that a bad argument
    # fails at the call and not at the first line read.
    _check_scenario(scenario, minutes)
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if rps <= 0:
        raise ValueError("rps must be positive")
    return _lines(scenario, start, minutes, rps, seed, tz)


def _lines(
    scenario: str, start: datetime, minutes: int, rps: float, seed: int, tz: tzinfo
) -> Iterator[str]:
    rng = random.Random(seed)
    site = _Site.draw(rng)
    start_ms = round(start.timestamp() * 1000)
    for minute in range(minutes):
        conditions = _conditions(scenario, minute, minutes, rps, rng)
        if conditions is None:
            continue
        # Poisson arrivals: exponential gaps, restarted each minute since the
        # rate changes from minute to minute.
        offset_s = rng.expovariate(conditions.rate)
        while offset_s < 60:
            ts_ms = start_ms + minute * 60_000 + int(offset_s * 1000)
            record, client_port = _request(rng, ts_ms, conditions, site)
            yield format_httplog_line(record, tz, client_port=client_port)
            offset_s += rng.expovariate(conditions.rate)


class LiveTraffic:
    """A scenario's traffic for stretches of time as they pass, for replaying it live.

    Where ``generate_lines`` follows the minutes of a run, here the caller decides when the
    incident holds: its conditions are those of the incident's last minute, fully developed.

    Example::

        traffic = LiveTraffic("deploy-regression", rps=40)
        send(traffic.lines(t0, t0 + 0.5, incident=False))
        send(traffic.lines(t0 + 0.5, t0 + 1.0, incident=True))
    """

    _RUN_MINUTES = 3 + OUTAGE_MIN_MINUTES  # long enough for every scenario

    def __init__(self, scenario: str, *, rps: float, seed: int = 0, tz: tzinfo = timezone.utc) -> None:
        _check_scenario(scenario, self._RUN_MINUTES)
        if rps <= 0:
            raise ValueError("rps must be positive")
        self._rng = random.Random(seed)
        self._site = _Site.draw(self._rng)
        self._tz = tz
        onset, end = _incident_minutes(scenario, self._RUN_MINUTES)
        last = 0 if end is None else end - 1
        self._healthy = _conditions("baseline", 0, self._RUN_MINUTES, rps, self._rng)
        self._incident = _conditions(scenario, last, self._RUN_MINUTES, rps, self._rng)

    def lines(self, start: float, end: float, *, incident: bool) -> list[str]:
        """The requests accepted from ``start`` to ``end`` (Unix seconds), in accept-date order."""
        conditions = self._incident if incident else self._healthy
        if conditions is None:  # an outage: nothing reaches HAProxy
            return []
        out: list[str] = []
        ts = start + self._rng.expovariate(conditions.rate)
        while ts < end:
            record, client_port = _request(self._rng, int(ts * 1000), conditions, self._site)
            out.append(format_httplog_line(record, self._tz, client_port=client_port))
            ts += self._rng.expovariate(conditions.rate)
        return out


def format_httplog_line(record: LogRecord, tz: tzinfo, *, client_port: int = 40000) -> str:
    """``record`` as HAProxy's default httplog line, its accept date in ``tz``."""
    seconds, millis = divmod(round(record.ts * 1000), 1000)
    if record.method == "-" and record.path == "-":
        request = "<BADREQ>"
    else:
        request = f"{record.method} {record.path} HTTP/1.1"
    return (
        f"{record.client_ip}:{client_port} [{_accept_second(seconds, tz)}.{millis:03d}] "
        f"{record.frontend} {record.backend}/{record.server} "
        f"{record.time_request}/{record.time_queue}/{record.time_connect}/"
        f"{record.time_response}/{record.time_active} "
        f"{record.status} {record.bytes_read} - - {record.termination_state} "
        f"{record.actconn}/{record.feconn}/{record.beconn}/{record.srv_conn}/{record.retries} "
        f"{record.srv_queue}/{record.backend_queue} "
        f'"{request}"'
    )


@lru_cache(maxsize=4096)
def _accept_second(seconds: int, tz: tzinfo) -> str:
    """Epoch ``seconds`` as HAProxy's accept date to the second, `25/Nov/2026:16:33:09`."""
    local = datetime.fromtimestamp(seconds, tz)
    return (
        f"{local.day:02d}/{_MONTH_NAMES[local.month - 1]}/{local.year:04d}:"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    )


# Written out rather than taken from strftime, which follows the process
# locale; HAProxy always writes them in English.
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_SYMPTOMS: dict[str, tuple[str | None, str]] = {
    "baseline": (None, "healthy throughout"),
    "deploy-regression": (
        "api",
        "api slows down (P99 about 2 s) and answers a rising share of 504 (sH--) and 503 (SC--)",
    ),
    "auth-regression": ("checkout", "about 25% of POST /api/checkout answer 401"),
    "outage": (None, "no requests are logged at all"),
    "traffic-spike": (None, "about five times the usual traffic, mostly on web and static"),
    "backend-spike": ("web", "about five times the usual traffic on web alone; the other backends as usual"),
    "server-refusing": (
        "web",
        "web-2 refuses connections: its requests end 503 (SC--) after 3 retries; web-1 and web-3 stay healthy",
    ),
    "latency-creep": (
        "checkout",
        f"checkout's response time grows minute by minute, about {CREEP_FACTOR_AT_END:g} times the usual by the end",
    ),
    "quiet-broken-backend": (
        "admin",
        f"admin, at about {QUIET_REQUESTS_PER_MINUTE:g} requests a minute, answers 503 (SC--) to every request; "
        "too little traffic to matter, the rest of the site is healthy",
    ),
}
_SERVERS = {"server-refusing": "web-2"}


def _check_scenario(scenario: str, minutes: int) -> None:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if minutes < 1:
        raise ValueError("minutes must be at least 1")
    if scenario != "baseline" and minutes < 3:
        raise ValueError(f"{scenario} needs at least 3 minutes: healthy, then the incident")
    if scenario == "outage" and minutes < 3 + OUTAGE_MIN_MINUTES:
        raise ValueError(
            f"outage needs at least {3 + OUTAGE_MIN_MINUTES} minutes: "
            f"3 healthy, then {OUTAGE_MIN_MINUTES} silent"
        )


def _incident_minutes(scenario: str, minutes: int) -> tuple[int | None, int | None]:
    """The incident's first minute and the minute after its last, from the start."""
    if scenario == "baseline":
        return None, None
    if scenario == "outage":
        # Near the end, so that the run shows a healthy stretch before the
        # silence, and the silence runs past any "no data" alert's wait.
        return max(3, minutes - OUTAGE_MIN_MINUTES - 1), minutes
    onset = minutes // 3
    if scenario in ("traffic-spike", "backend-spike"):
        return onset, min(minutes, onset + max(2, min(5, minutes // 3)))
    return onset, minutes


@dataclass(frozen=True, slots=True)
class _Conditions:
    """What one minute of traffic looks like."""

    rate: float  # requests per second, all traffic
    spike_share: float  # share of requests that are the spike's extra traffic
    latency_factor: float  # on every backend's response time
    api_slow_share: float  # api requests hitting the slow code path
    api_failure_share: float  # api requests failing outright
    checkout_denied_share: float  # POST /api/checkout answered 401
    connections: dict[str, float]  # concurrent requests per backend (Little's law)
    spike_backend: str | None = None  # where all of the spike's extra traffic goes, if on one backend
    refusing_server: str | None = None  # a server that refuses every connection
    slow_backend: str | None = None  # a backend whose response time is `slow_factor` times the usual
    slow_factor: float = 1.0
    quiet_rate: float = 0.0  # requests per second to the quiet backend, included in `rate`
    broken_backend: str | None = None  # a backend that answers 503 to everything

    @property
    def in_flight(self) -> float:
        return sum(self.connections.values())


def _conditions(
    scenario: str, minute: int, minutes: int, rps: float, rng: random.Random
) -> _Conditions | None:
    onset, end = _incident_minutes(scenario, minutes)
    during = onset is not None and onset <= minute < end
    # Mild drift and noise, so that a healthy run is not a flat line.
    rate = rps * max(0.5, 1 + 0.08 * math.sin(minute / 7) + rng.gauss(0, 0.03))
    spike_share = 0.0
    latency_factor = 1.0
    api_slow_share = 0.0
    api_failure_share = 0.0
    checkout_denied_share = 0.0
    spike_backend = refusing_server = slow_backend = broken_backend = None
    slow_factor = 1.0
    quiet_rate = 0.0
    if during and scenario == "outage":
        return None
    if during and scenario == "traffic-spike":
        spike_share = 0.8  # four extra requests for each usual one
        rate *= 5
        latency_factor = 1.3
    if during and scenario == "deploy-regression":
        progress = (minute - onset) / (end - onset)
        api_slow_share = 0.05 + 0.03 * progress
        api_failure_share = 0.08 + 0.14 * progress
    if during and scenario == "auth-regression":
        checkout_denied_share = 0.25
    if during and scenario == "backend-spike":
        spike_backend = "web"
        extra = 4 * _BY_NAME[spike_backend].share  # four extra requests for each usual one of web
        spike_share = extra / (1 + extra)
        rate *= 1 + extra
    if during and scenario == "server-refusing":
        refusing_server = _SERVERS[scenario]
    if during and scenario == "latency-creep":
        slow_backend = "checkout"
        slow_factor = CREEP_FACTOR_AT_END ** ((minute - onset + 1) / (end - onset))
    if scenario == "quiet-broken-backend":
        quiet_rate = QUIET_REQUESTS_PER_MINUTE / 60
        rate += quiet_rate
        broken_backend = _ADMIN.name if during else None
    connections = {}
    for backend in _BACKENDS:
        spike_weight = backend.spike_share if spike_backend is None else float(backend.name == spike_backend)
        backend_rate = rate * ((1 - spike_share) * backend.share + spike_share * spike_weight)
        typical_ms = backend.response_ms * latency_factor * 1.3
        if backend.name == "api":
            typical_ms += (api_slow_share * 1500) + (api_failure_share * SERVER_TIMEOUT_MS)
        if backend.name == slow_backend:
            typical_ms *= slow_factor
        connections[backend.name] = backend_rate * typical_ms / 1000
    if quiet_rate:
        connections[_ADMIN.name] = quiet_rate * _ADMIN.response_ms * 1.3 / 1000
    return _Conditions(
        rate=rate,
        spike_share=spike_share,
        latency_factor=latency_factor,
        api_slow_share=api_slow_share,
        api_failure_share=api_failure_share,
        checkout_denied_share=checkout_denied_share,
        connections=connections,
        spike_backend=spike_backend,
        refusing_server=refusing_server,
        slow_backend=slow_backend,
        slow_factor=slow_factor,
        quiet_rate=quiet_rate,
        broken_backend=broken_backend,
    )


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    template: str  # a path with placeholders, see _Placeholders
    weight: float
    body_bytes: int  # typical response size
    ok_status: int = 200


@dataclass(frozen=True, slots=True)
class _Backend:
    name: str
    servers: tuple[str, ...]
    share: float  # of usual traffic
    spike_share: float  # of a spike's extra traffic
    response_ms: float  # median Tr
    spread: float  # sigma of the lognormal Tr
    routes: tuple[_Route, ...]


@dataclass(frozen=True, slots=True)
class _Site:
    """What stays the same through one run: the clients and the deployed assets."""

    clients: tuple[str, ...]
    js_hash: str
    css_hash: str

    @classmethod
    def draw(cls, rng: random.Random) -> _Site:
        clients = []
        for _ in range(400):
            if rng.random() < 0.08:
                clients.append(f"2001:db8:{rng.randrange(1 << 16):x}::{rng.randrange(1, 1 << 16):x}")
            else:
                prefix = rng.choice(("81.2", "92.184", "176.31", "10.20"))
                clients.append(f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
        return cls(
            clients=tuple(clients),
            js_hash=f"{rng.getrandbits(32):08x}",
            css_hash=f"{rng.getrandbits(32):08x}",
        )


_WORDS = ("shoes", "lamp", "coffee", "desk", "socks", "kettle", "backpack", "chair", "mug", "tent")


class _Placeholders(dict[str, object]):
    """Values for a route template, drawn only for the placeholders it has."""

    def __init__(self, rng: random.Random, site: _Site) -> None:
        super().__init__()
        self.rng = rng
        self.site = site

    def __missing__(self, name: str) -> object:
        if name == "item":
            return self.rng.randint(1, 60_000)
        if name == "user":
            return uuid.UUID(int=self.rng.getrandbits(128), version=4)
        if name == "word":
            return self.rng.choice(_WORDS)
        if name == "page":
            return self.rng.randint(1, 40)
        return getattr(self.site, name)  # the asset hashes


_BACKENDS = (
    _Backend(
        "api", ("api-1", "api-2", "api-3", "api-4"), share=0.40, spike_share=0.1,
        response_ms=35, spread=0.6,
        routes=(
            _Route("GET", "/api/items/{item}", 30, 900),
            _Route("GET", "/api/items?page={page}&limit=20", 15, 8_000),
            _Route("GET", "/api/users/{user}", 12, 600),
            _Route("GET", "/api/users/{user}/orders?page=1", 6, 3_000),
            _Route("GET", "/api/search?q={word}", 10, 5_000),
            _Route("POST", "/api/items", 5, 300, ok_status=201),
            _Route("PUT", "/api/items/{item}", 3, 300),
            _Route("DELETE", "/api/items/{item}", 1, 0, ok_status=204),
        ),
    ),
    _Backend(
        "web", ("web-1", "web-2", "web-3"), share=0.25, spike_share=0.5,
        response_ms=60, spread=0.5,
        routes=(
            _Route("GET", "/", 20, 24_000),
            _Route("GET", "/products/{item}", 30, 30_000),
            _Route("GET", "/category/{word}", 15, 28_000),
            _Route("GET", "/search?q={word}&sort=price", 10, 26_000),
            _Route("GET", "/account", 5, 12_000),
        ),
    ),
    _Backend(
        "static", ("static-1", "static-2"), share=0.20, spike_share=0.4,
        response_ms=3, spread=0.5,
        routes=(
            _Route("GET", "/static/js/app.{js_hash}.js", 20, 180_000),
            _Route("GET", "/static/css/main.{css_hash}.css", 15, 40_000),
            _Route("GET", "/static/img/products/{item}.webp", 50, 25_000),
            _Route("GET", "/favicon.ico", 5, 1_150),
        ),
    ),
    _Backend(
        "auth", ("auth-1", "auth-2"), share=0.07, spike_share=0.0,
        response_ms=45, spread=0.4,
        routes=(
            _Route("POST", "/auth/login", 20, 400),
            _Route("POST", "/auth/refresh", 40, 350),
            _Route("GET", "/auth/session", 35, 250),
            _Route("POST", "/auth/logout", 5, 0, ok_status=204),
        ),
    ),
    _Backend(
        "checkout", ("checkout-1", "checkout-2"), share=0.08, spike_share=0.0,
        response_ms=120, spread=0.5,
        routes=(
            _Route("POST", "/api/checkout", 40, 700, ok_status=201),
            _Route("GET", "/api/cart", 30, 1_500),
            _Route("POST", "/api/cart/items", 20, 400, ok_status=201),
            _Route("GET", "/api/orders/{item}", 10, 1_200),
        ),
    ),
)
# A backend only one scenario has, so that the others draw exactly as before it existed.
_ADMIN = _Backend(
    "admin", ("admin-1",), share=0.0, spike_share=0.0, response_ms=25, spread=0.4,
    routes=(
        _Route("GET", "/admin/orders?page={page}", 50, 6_000),
        _Route("GET", "/admin/users/{user}", 30, 900),
        _Route("POST", "/admin/items/{item}", 20, 300),
    ),
)
_BY_NAME = {b.name: b for b in (*_BACKENDS, _ADMIN)}
_USUAL_WEIGHTS = tuple(accumulate(b.share for b in _BACKENDS))
_SPIKE_WEIGHTS = tuple(accumulate(b.spike_share for b in _BACKENDS))
_ROUTE_WEIGHTS = {b.name: tuple(accumulate(r.weight for r in b.routes)) for b in _BY_NAME.values()}

_HTTPS_SHARE = 0.85

# Client errors of a healthy site, most frequent first, and the server errors
# it still has now and then, each with its termination state.
_CLIENT_ERRORS = (404, 400, 401, 403, 429)
_CLIENT_ERROR_WEIGHTS = tuple(accumulate((60, 15, 10, 10, 5)))
_HEALTHY_CLIENT_ERROR_SHARE = 0.02
_HEALTHY_SERVER_ERROR_SHARE = 0.003
# Sizes of HAProxy's own error pages, which it sends when the server did not answer.
_ERROR_PAGE_BYTES = {502: 209, 503: 217, 504: 198}


def _request(
    rng: random.Random, ts_ms: int, conditions: _Conditions, site: _Site
) -> tuple[LogRecord, int]:
    """One request at ``ts_ms`` under ``conditions``, and the client port it came from."""
    if conditions.quiet_rate and rng.random() < conditions.quiet_rate / conditions.rate:
        backend = _ADMIN
    elif rng.random() < conditions.spike_share:
        if conditions.spike_backend is not None:
            backend = _BY_NAME[conditions.spike_backend]
        else:
            backend = rng.choices(_BACKENDS, cum_weights=_SPIKE_WEIGHTS)[0]
    else:
        backend = rng.choices(_BACKENDS, cum_weights=_USUAL_WEIGHTS)[0]
    route = rng.choices(backend.routes, cum_weights=_ROUTE_WEIGHTS[backend.name])[0]
    path = route.template.format_map(_Placeholders(rng, site)) if "{" in route.template else route.template
    outcome = _outcome(rng, backend, route, path, conditions)

    https = rng.random() < _HTTPS_SHARE
    # Besides the requests in flight, the frontends hold idle keep-alive connections.
    actconn = 1 + int(rng.uniform(0.9, 1.1) * (conditions.in_flight + conditions.rate * 0.3))
    beconn = 1 + int(rng.uniform(0.7, 1.3) * conditions.connections[backend.name])
    client_ip = rng.choice(site.clients)
    server = rng.choice(backend.servers)
    if server == conditions.refusing_server:
        outcome = _refused_by_server(rng, outcome)
    record = LogRecord(
        ts=ts_ms / 1000,
        client_ip=client_ip,
        frontend="fe_https~" if https else "fe_http",
        backend=backend.name,
        server=server,
        method=route.method,
        path=path,
        status=outcome.status,
        bytes_read=outcome.bytes_sent,
        time_request=outcome.time_request,
        time_queue=outcome.time_queue,
        time_connect=outcome.time_connect,
        time_response=outcome.time_response,
        time_active=outcome.time_active,
        termination_state=outcome.termination_state,
        actconn=actconn,
        feconn=max(1, round(actconn * (_HTTPS_SHARE if https else 1 - _HTTPS_SHARE))),
        beconn=beconn,
        srv_conn=max(1, round(beconn / len(backend.servers))),
        retries=outcome.retries,
        srv_queue=0,
        backend_queue=outcome.backend_queue,
    )
    return record, rng.randint(1024, 65535)


@dataclass(slots=True)
class _Outcome:
    """How a request went: status, termination state and the timers HAProxy reports."""

    status: int
    termination_state: str = "----"
    time_request: int = 0
    time_queue: int = 0
    time_connect: int = 0
    time_response: int = 0
    time_active: int = 0
    bytes_sent: int = 0
    retries: int = 0
    backend_queue: int = 0


def _outcome(
    rng: random.Random, backend: _Backend, route: _Route, path: str, conditions: _Conditions
) -> _Outcome:
    out = _Outcome(
        status=route.ok_status,
        time_request=int(rng.expovariate(1 / 1.5)),
        time_connect=int(rng.expovariate(1 / 0.7)),
    )
    median_ms = backend.response_ms * conditions.latency_factor
    if backend.name == conditions.slow_backend:
        median_ms *= conditions.slow_factor
    response_ms = rng.lognormvariate(math.log(median_ms), backend.spread)
    body = route.body_bytes

    failing = False
    if backend.name == "api" and conditions.api_failure_share:
        if rng.random() < conditions.api_slow_share * 2:
            # A saturated backend makes requests wait for a free server.
            out.time_queue = int(rng.expovariate(1 / 40))
            out.backend_queue = rng.randint(1, 8)
        if rng.random() < conditions.api_slow_share:
            response_ms = rng.lognormvariate(math.log(1500), 0.2)
        failing = rng.random() < conditions.api_failure_share

    draw = rng.random()
    if backend.name == conditions.broken_backend:
        _refused(out)  # every server of the backend down
    elif failing and rng.random() < 0.3:
        _refused(out)  # servers restarting in a loop
    elif failing or response_ms >= SERVER_TIMEOUT_MS:
        out.status, out.termination_state = 504, "sH--"
    elif path == "/api/checkout" and rng.random() < conditions.checkout_denied_share:
        out.status, body, response_ms = 401, 120, rng.lognormvariate(math.log(6), 0.3)
    elif draw < _HEALTHY_SERVER_ERROR_SHARE:
        out.status, body = rng.choice((500, 500, 500, 502, 503)), 300
        if out.status == 502:  # the server closed the connection without answering
            out.termination_state = "SH--"
        elif out.status == 503:
            _refused(out)
    elif draw < _HEALTHY_SERVER_ERROR_SHARE + _HEALTHY_CLIENT_ERROR_SHARE:
        out.status = rng.choices(_CLIENT_ERRORS, cum_weights=_CLIENT_ERROR_WEIGHTS)[0]
        body, response_ms = 150, response_ms / 3
    elif backend.name == "static" and draw > 0.85:
        out.status, body = 304, 0

    setup = out.time_request + out.time_queue
    if out.termination_state == "----":
        out.time_response = int(response_ms)
        out.bytes_sent = int(250 + body * rng.lognormvariate(0, 0.3))
        # Time to stream the body to the client, after the server's first byte.
        data_ms = int(rng.expovariate(1 / (0.5 + out.bytes_sent / 200_000)))
        out.time_active = setup + out.time_connect + out.time_response + data_ms
        return out
    _unanswered(rng, out)
    return out


def _refused_by_server(rng: random.Random, planned: _Outcome) -> _Outcome:
    """What becomes of a request sent to a server that refuses connections."""
    out = _Outcome(status=503, time_request=planned.time_request, time_queue=planned.time_queue,
                   backend_queue=planned.backend_queue)
    _refused(out)
    _unanswered(rng, out)
    return out


def _unanswered(rng: random.Random, out: _Outcome) -> None:
    """The server never answered: HAProxy sends its own error page."""
    setup = out.time_request + out.time_queue
    out.time_response = -1
    out.bytes_sent = _ERROR_PAGE_BYTES[out.status]
    if out.termination_state == "SC--":
        out.time_active = setup + MAX_RETRIES * _RETRY_DELAY_MS + rng.randint(0, 9)
    elif out.termination_state == "sH--":
        out.time_active = setup + out.time_connect + SERVER_TIMEOUT_MS + rng.randint(0, 3)
    else:
        out.time_active = setup + out.time_connect + int(rng.expovariate(1 / 30))


def _refused(out: _Outcome) -> None:
    """Connections refused: HAProxy retries after its turn-around delay, then answers 503."""
    out.status, out.termination_state = 503, "SC--"
    out.time_connect, out.retries = -1, MAX_RETRIES
