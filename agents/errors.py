"""The errors specialist: 5xx and 4xx rates, and which backend, route, status code and termination state."""

from __future__ import annotations

from ingestion import BackendStats, PathStats, Servers, ServerStats

from . import wording
from .assessment import Assessment, Cause, worst_cause_first
from .config import Thresholds
from .haproxy import abnormal_states, explain_state
from .report import Evidence, Severity
from .signals import SignalSnapshot
from .specialist_spec import SpecialistSpec

_STATE_SHARE_OF_ERRORS_PCT = 10.0
# One server holding this share of a backend's 5xx, the others healthy, is the culprit.
_ONE_SERVER_SHARE = 0.8
_CLIENT_CODE_KINDS = {"401": "auth_failures", "403": "auth_failures", "404": "not_found", "429": "rate_limited"}


def rate_5xx_severity(rate: float, t: Thresholds) -> Severity:
    if rate > t.error_rate_5xx_critical_pct:
        return Severity.critical
    if rate > t.error_rate_5xx_pct:
        return Severity.warning
    return Severity.ok


def rate_4xx_severity(rate: float, t: Thresholds) -> Severity:
    return Severity.warning if rate > t.error_rate_4xx_pct else Severity.ok


def evaluate_errors(s: SignalSnapshot, t: Thresholds) -> Assessment:
    """Error rates against thresholds overall, per backend and per route, then what the errors are."""
    ov = s.overview
    window = s.window_minutes
    scope = wording.scope_label(s.backend)
    evidence = [
        Evidence(metric="error_rate_5xx_pct", value=ov.error_rate_5xx_pct, threshold=t.error_rate_5xx_pct, unit="%",
                 window_minutes=window, scope=scope),
        Evidence(metric="error_rate_4xx_pct", value=ov.error_rate_4xx_pct, threshold=t.error_rate_4xx_pct, unit="%",
                 window_minutes=window, scope=scope),
        Evidence(metric="requests", value=float(ov.total_requests), unit="requests", window_minutes=window,
                 scope=scope),
    ]
    if ov.total_requests == 0:
        return Assessment("errors", Severity.ok, "No requests in the window: error rates not measured.",
                          "There were no requests to measure.", tuple(evidence))
    rates = f"5xx {wording.pct(ov.error_rate_5xx_pct)}, 4xx {wording.pct(ov.error_rate_4xx_pct)}"
    if ov.requests_per_minute < t.min_requests_per_minute:
        evidence.append(Evidence(metric="requests_per_minute", value=round(ov.requests_per_minute, 2),
                                 threshold=t.min_requests_per_minute, unit="req/min", window_minutes=window,
                                 scope=scope))
        return Assessment(
            "errors", Severity.ok,
            f"Traffic of {wording.rate(ov.requests_per_minute)} is below the floor of "
            f"{wording.rate(t.min_requests_per_minute)}: error rates ({rates}) do not alert.",
            "Rates over so few requests are noise.", tuple(evidence),
        )

    floor = t.min_requests_per_minute * window
    backends = [b for b in s.backend_stats if b.requests >= floor]
    routes = [p for p in s.paths.top_by_errors if p.requests >= floor]

    sev_5xx = Severity.worst([rate_5xx_severity(ov.error_rate_5xx_pct, t),
                              *(rate_5xx_severity(b.error_rate_5xx_pct, t) for b in backends),
                              *(rate_5xx_severity(p.error_rate_5xx_pct, t) for p in routes)])
    sev_4xx = Severity.worst([rate_4xx_severity(ov.error_rate_4xx_pct, t),
                              *(rate_4xx_severity(b.error_rate_4xx_pct, t) for b in backends),
                              *(rate_4xx_severity(p.error_rate_4xx_pct, t) for p in routes)])
    severity = Severity.worst([sev_5xx, sev_4xx])
    if severity == Severity.ok:
        return Assessment(
            "errors", Severity.ok, f"Error rates within thresholds: {rates}.",
            f"5xx warning above {wording.pct(t.error_rate_5xx_pct)}, critical above "
            f"{wording.pct(t.error_rate_5xx_critical_pct)}; 4xx warning above {wording.pct(t.error_rate_4xx_pct)}.",
            tuple(evidence),
        )

    details: list[str] = [f"Overall {rates} of {ov.total_requests} requests over {window} min."]
    causes: list[Cause] = []
    headlines: list[str] = []
    summaries: list[str] = []
    culprit_backend: str | None = s.backend

    if sev_5xx != Severity.ok:
        row = _worst_backend(backends, t, server=True)
        culprit_backend = row.backend if row else s.backend
        rate = row.error_rate_5xx_pct if row else ov.error_rate_5xx_pct
        where = culprit_backend or "all backends"
        headlines.append(f"{wording.pct(rate)} 5xx")
        summaries.append(f"{where} returns {wording.pct(rate)} 5xx")
        if row is not None and s.backend is None:
            evidence.append(Evidence(metric="error_rate_5xx_pct", value=row.error_rate_5xx_pct,
                                     threshold=t.error_rate_5xx_pct, unit="%", window_minutes=window,
                                     scope=f"backend={row.backend}"))
        codes = _codes(row.status_codes if row else s.status_codes.codes, "5")
        states = row.termination_states if row else s.termination_states.states
        errors = row.errors_5xx if row else ov.errors_5xx
        if codes:
            details.append(f"5xx by status on {where}: " + ", ".join(f"{c} \u00d7{n}" for c, n in codes[:4]) + ".")
        over = sorted((b for b in backends if rate_5xx_severity(b.error_rate_5xx_pct, t) != Severity.ok),
                      key=lambda b: (-b.error_rate_5xx_pct, -b.errors_5xx))
        if len(over) > 1 and s.backend is None:
            details.append("Backends above the 5xx threshold, worst first: " + ", ".join(
                f"{b.backend} {wording.pct(b.error_rate_5xx_pct)}" for b in over[:5]) + ".")
        split = _one_server(s.servers, culprit_backend, t)
        if split is not None:
            worst, others = split
            details.append(_server_sentence(worst, others, codes[0][0] if codes else "5xx"))
            evidence.append(Evidence(metric="error_rate_5xx_pct", value=worst.error_rate_5xx_pct,
                                     threshold=t.error_rate_5xx_pct, unit="%", window_minutes=window,
                                     scope=f"server={worst.backend}/{worst.server}"))
        found = _state_causes(states, errors, sev_5xx, culprit_backend, window, evidence, details,
                              codes=tuple(c for c, _ in codes[:3]), server=split[0].server if split else None)
        if not found and codes:
            code = codes[0][0]
            label = f"{code} application errors" + (f" on {split[0].server}" if split else "")
            found.append(Cause("application_errors", sev_5xx, label, backend=culprit_backend,
                               codes=(code,), weight=float(codes[0][1]),
                               facts={"server": split[0].server} if split else {}))
            details.append(f"HAProxy ended these requests normally: the application itself answered {code}.")
        causes += found
        worst_routes = sorted((p for p in s.paths.top_by_errors if p.errors_5xx), key=lambda p: -p.errors_5xx)[:3]
        if worst_routes:
            details.append("Routes with most 5xx: " + ", ".join(
                f"{p.route} ({p.errors_5xx}, {wording.pct(p.error_rate_5xx_pct)})" for p in worst_routes) + ".")

    if sev_4xx != Severity.ok:
        route = _worst_route(routes, t)
        if route is not None:
            codes = _codes(route.status_codes, "4")
            code = codes[0][0] if codes else "4xx"
            share = 100.0 * codes[0][1] / route.requests if codes and route.requests else route.error_rate_4xx_pct
            backend = s.backend or _backend_serving(code, s.backend_stats)
            headlines.append(f"{wording.pct(share)} {code} on {route.route}")
            summaries.append(f"{route.route} answers {wording.pct(share)} {code}")
            details.append(
                f"{route.route}: {route.errors_4xx} of {route.requests} requests were 4xx "
                f"({wording.pct(route.error_rate_4xx_pct)}); by status: "
                + ", ".join(f"{c} \u00d7{n}" for c, n in codes[:4]) + "."
            )
            evidence.append(Evidence(metric=f"status_{code}_pct", value=round(share, 2),
                                     threshold=t.error_rate_4xx_pct, unit="%", window_minutes=window,
                                     scope=f"route={route.route}"))
            evidence.append(Evidence(metric="error_rate_4xx_pct", value=route.error_rate_4xx_pct,
                                     threshold=t.error_rate_4xx_pct, unit="%", window_minutes=window,
                                     scope=f"route={route.route}"))
            kind = _CLIENT_CODE_KINDS.get(code, "client_errors")
            label = {"auth_failures": f"{code} auth failures", "not_found": "404 not found",
                     "rate_limited": "429 rate limiting"}.get(kind, f"{code} client errors")
            causes.append(Cause(kind, sev_4xx, label, backend=backend, route=route.route, codes=(code,),
                                weight=float(route.errors_4xx), facts={"share_pct": round(share, 1)}))
            culprit_backend = culprit_backend or backend
        else:
            row = _worst_backend(backends, t, server=False)
            rate = row.error_rate_4xx_pct if row else ov.error_rate_4xx_pct
            codes = _codes(row.status_codes if row else s.status_codes.codes, "4")
            code = codes[0][0] if codes else "4xx"
            where = row.backend if row else (s.backend or "all backends")
            headlines.append(f"{wording.pct(rate)} 4xx")
            summaries.append(f"{where} answers {wording.pct(rate)} 4xx")
            details.append(f"4xx by status on {where}: " + ", ".join(f"{c} \u00d7{n}" for c, n in codes[:4]) + ".")
            kind = _CLIENT_CODE_KINDS.get(code, "client_errors")
            causes.append(Cause(kind, sev_4xx, f"{code} client errors", backend=row.backend if row else s.backend,
                                codes=(code,), weight=rate))
            culprit_backend = culprit_backend or (row.backend if row else None)

    _note_client_aborts(s.termination_states.states, ov.total_requests, details)
    return Assessment(
        "errors", severity, "; ".join(summaries) + ".", " ".join(details), tuple(evidence),
        worst_cause_first(causes), " and ".join(headlines), culprit_backend,
    )


def _worst_backend(rows: list[BackendStats], t: Thresholds, *, server: bool) -> BackendStats | None:
    if server:
        over = [r for r in rows if rate_5xx_severity(r.error_rate_5xx_pct, t) != Severity.ok]
        return max(over, key=lambda r: (r.error_rate_5xx_pct, r.errors_5xx), default=None)
    over = [r for r in rows if rate_4xx_severity(r.error_rate_4xx_pct, t) != Severity.ok]
    return max(over, key=lambda r: (r.error_rate_4xx_pct, r.errors_4xx), default=None)


def _worst_route(routes: list[PathStats], t: Thresholds) -> PathStats | None:
    over = [p for p in routes if rate_4xx_severity(p.error_rate_4xx_pct, t) != Severity.ok]
    return max(over, key=lambda p: (p.errors_4xx, p.error_rate_4xx_pct), default=None)


def _codes(codes: dict[str, int], klass: str) -> list[tuple[str, int]]:
    return sorted(((c, n) for c, n in codes.items() if c.startswith(klass) and n > 0), key=lambda cn: -cn[1])


def _backend_serving(code: str, rows: list[BackendStats]) -> str | None:
    """The backend that returned the most of `code`: the service behind a failing route."""
    best = max(rows, key=lambda r: r.status_codes.get(code, 0), default=None)
    return best.backend if best is not None and best.status_codes.get(code, 0) > 0 else None


def _one_server(servers: Servers | None, backend: str | None,
                t: Thresholds) -> tuple[ServerStats, list[ServerStats]] | None:
    """The one server of `backend` that answers (nearly) all its 5xx while the others are healthy, if so."""
    if servers is None or backend is None:
        return None
    rows = [r for r in servers.servers if r.backend == backend and r.requests and r.server != "<NOSRV>"]
    total = sum(r.errors_5xx for r in rows)
    if len(rows) < 2 or total == 0:
        return None
    worst = max(rows, key=lambda r: (r.errors_5xx, r.error_rate_5xx_pct))
    others = [r for r in rows if r is not worst]
    if worst.errors_5xx < _ONE_SERVER_SHARE * total:
        return None
    if any(rate_5xx_severity(r.error_rate_5xx_pct, t) != Severity.ok for r in others):
        return None
    return worst, others


def _server_sentence(worst: ServerStats, others: list[ServerStats], code: str) -> str:
    codes = [c for c in worst.status_codes if c.startswith("5")]
    named = codes[0] if codes else code
    total = worst.errors_5xx + sum(r.errors_5xx for r in others)
    share = "All" if worst.errors_5xx == total else f"{wording.pct(100.0 * worst.errors_5xx / total)} of"
    states = [st for st in worst.termination_states if st != "--"]
    ended = f", ended {states[0]}" if states else ""
    healthy = ", ".join(f"{r.server} {wording.pct(r.error_rate_5xx_pct)}" for r in others[:5])
    more = f" and {len(others) - 5} more" if len(others) > 5 else ""
    plural = "s" if len(others) != 1 else ""
    return (f"{share} the {named}s come from server {worst.server} ({worst.errors_5xx} of its {worst.requests} "
            f"requests, {wording.pct(worst.error_rate_5xx_pct)}{ended}); the other {len(others)} server{plural} "
            f"are healthy ({healthy}{more}).")


def _state_causes(states, errors, severity, backend, window, evidence, details, *, codes,
                  server: str | None = None) -> list[Cause]:
    causes = []
    for state, count in abnormal_states(states):
        meaning = explain_state(state)
        if meaning is None or not meaning.server_side or not errors:
            continue
        share = min(100.0, 100.0 * count / errors)
        if share < _STATE_SHARE_OF_ERRORS_PCT:
            continue
        details.append(f"{count} requests ended {state} ({wording.pct(share)} of the 5xx): {meaning.meaning}.")
        evidence.append(Evidence(metric=f"termination_{state}_requests", value=float(count), unit="requests",
                                 window_minutes=window, scope=wording.scope_label(backend)))
        label = meaning.label + (f" on {server}" if server else "")
        facts: dict[str, float | str] = {"state": state, "requests": count}
        if server:
            facts["server"] = server
        causes.append(Cause(meaning.kind, severity, label, backend=backend, codes=codes,
                            weight=100.0 + share, facts=facts))
    return causes


def _note_client_aborts(states: dict[str, int], total: int, details: list[str]) -> None:
    aborts = [(s, n) for s, n in abnormal_states(states) if (m := explain_state(s)) and m.kind == "client_abort"]
    if aborts and total:
        state, count = aborts[0]
        details.append(
            f"{count} requests ({wording.pct(100.0 * count / total)}) ended {state}: clients gave up; "
            "usually a symptom of slowness, not a server fault."
        )


ERRORS = SpecialistSpec(
    name="errors",
    focus=(
        "You assess ERRORS: 5xx and 4xx rates overall, per backend and per route, which status codes, and which "
        "HAProxy termination states: sH = server timeout (504), SC = connection refused (503, servers down), "
        "SH = server aborted (502), sQ = queue timeout (503), CD/CH = the client aborted (not a server fault), "
        "'--' = HAProxy ended normally so the application itself returned the error."
    ),
    tools=("overview", "status_codes", "backends", "paths", "termination_states", "servers", "series",
           "samples"),
    evaluate=evaluate_errors,
)
