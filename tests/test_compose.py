"""The compose stack: what `docker compose up` would run, the files it mounts, and the demo behind HAProxy."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from ingestion import METRIC_NAMES, LogRecord, parse_httplog_line
from ingestion.syslog_framing import message_lines

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
REPLICAS_HAPROXY_CONFIG = ROOT / "deploy" / "haproxy" / "replicas.cfg"
DEMO_BACKEND = ROOT / "deploy" / "demo_backend.py"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "golden-signals.json"

SERVICE = "incident-copilot"
REPLICA = "copilot-replica"  # profile `replicas`: more copies of the service, behind copilot-lb
SERVICES = {"redis", SERVICE, "demo-backend", "haproxy", "traffic", "prometheus", "alertmanager", "grafana",
            REPLICA, "copilot-lb"}
# The ports a user opens in a browser or points a client at; nothing else leaves the stack.
PUBLISHED = {"8080": SERVICE, "8081": "haproxy", "3000": "grafana", "9090": "prometheus", "9093": "alertmanager",
             "8090": "copilot-lb"}
# The compose names the configs of Prometheus and Alertmanager address the service by.
COPILOT_ADDRESS = f"{SERVICE}:8080"

needs_docker_compose = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not on PATH (Debian package `docker-compose`; `make test` installs it)",
)
needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy") is None, reason="haproxy not on PATH (Debian package `haproxy`)"
)
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not on PATH (Debian package `prometheus`)"
)


# The configuration compose resolves


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not on PATH (Debian package `docker-compose`; `make test` installs it)")
    # The defaults written in compose.yaml, whatever this shell or a local .env says.
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text(encoding="utf-8")))
    env = {key: value for key, value in os.environ.items() if key not in variables}
    empty_env_file = tmp_path_factory.mktemp("compose") / "empty.env"
    empty_env_file.write_text("")
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "--env-file", str(empty_env_file), "config"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def service(compose: dict, name: str) -> dict:
    return compose["services"][name]


def mounts(svc: dict) -> dict[str, str]:
    """Target → source of each volume (named or bound), as `docker-compose config` writes them."""
    found = {}
    for volume in svc.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        found[target] = source
    return found


def secret_targets(svc: dict) -> dict[str, str]:
    return {s["target"]: s["source"] for s in svc.get("secrets", [])}


def option(args: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a command line."""
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[index + 1]
    raise AssertionError(f"{name} not in {args}")


@needs_docker_compose
def test_the_stack_has_every_service(compose: dict):
    assert set(compose["services"]) == SERVICES


@needs_docker_compose
def test_redis_evicts_only_keys_with_a_ttl_and_keeps_an_append_only_file_on_a_named_volume(compose: dict):
    redis = service(compose, "redis")
    command = redis["command"]
    # The service never gives incidents or the alert stream a TTL: only volatile-*
    # policies leave them alone.
    assert option(command, "--maxmemory-policy") in {"volatile-ttl", "volatile-lru", "volatile-lfu"}
    assert option(command, "--maxmemory") not in {"0", "0b"}
    assert option(command, "--appendonly") == "yes"
    assert mounts(redis)["/data"] in compose["volumes"]


@needs_docker_compose
def test_the_service_uses_the_stack_redis_listens_for_syslog_and_keeps_post_mortems(compose: dict):
    svc = service(compose, SERVICE)
    env = svc["environment"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["HOST"] == "0.0.0.0"
    assert env["SYSLOG_HOST"] == "0.0.0.0"
    assert env["SYSLOG_PORT"] == "5140"
    assert env["LOG_TIMEZONE"] == "UTC"
    assert mounts(svc)[env["POSTMORTEM_DIR"]] in compose["volumes"]
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert svc["build"]["context"] == str(ROOT)


@needs_docker_compose
def test_the_replicas_profile_runs_copies_of_the_service_on_its_redis_behind_a_load_balancer(compose: dict):
    replica, lb = service(compose, REPLICA), service(compose, "copilot-lb")
    assert replica["profiles"] == lb["profiles"] == ["replicas"]  # `docker compose up` alone runs one service
    main = service(compose, SERVICE)
    assert replica["environment"] == main["environment"]  # the same Redis, token and post-mortems folder
    assert mounts(replica) == mounts(main) and secret_targets(replica) == secret_targets(main)
    assert int(replica["deploy"]["replicas"]) >= 2
    assert "ports" not in replica  # reached through the load balancer only
    assert lb["environment"]["COPILOT_REPLICAS_ADDR"] == f"{REPLICA}:{main['environment']['PORT']}"
    assert mounts(lb)["/usr/local/etc/haproxy/haproxy.cfg"] == str(REPLICAS_HAPROXY_CONFIG)


@needs_docker_compose
def test_the_service_and_alertmanager_read_the_same_webhook_token(compose: dict):
    svc = service(compose, SERVICE)
    token_file = svc["environment"]["WEBHOOK_TOKEN_FILE"]
    secret = secret_targets(svc)[token_file]
    receiver = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))["receivers"][0]
    (webhook,) = receiver["webhook_configs"]
    credentials_file = webhook["http_config"]["authorization"]["credentials_file"]
    assert secret_targets(service(compose, "alertmanager"))[credentials_file] == secret
    assert Path(compose["secrets"][secret]["file"]).read_text(encoding="utf-8").strip()


def test_the_entrypoint_turns_the_token_file_into_the_variable_the_service_reads(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    env = {"PATH": os.environ["PATH"], "WEBHOOK_TOKEN_FILE": str(token)}
    result = subprocess.run(["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), "sh", "-c",
                             'printf "%s|%s" "$WEBHOOK_TOKEN" "${WEBHOOK_TOKEN_FILE-unset}"'],
                            capture_output=True, text=True, env=env, timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s3cret|unset"
    token.write_text("")
    result = subprocess.run(["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), "true"],
                            capture_output=True, text=True, env=env, timeout=10)
    assert result.returncode != 0
    assert "empty" in result.stderr


@needs_docker_compose
def test_prometheus_and_alertmanager_find_the_service_and_each_other_by_compose_name(compose: dict):
    prometheus_config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (scrape,) = prometheus_config["scrape_configs"]
    assert scrape["static_configs"][0]["targets"] == [COPILOT_ADDRESS]
    assert service(compose, SERVICE)["environment"]["PORT"] == COPILOT_ADDRESS.split(":")[1]
    (alertmanagers,) = prometheus_config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    alertmanager_config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    url = alertmanager_config["receivers"][0]["webhook_configs"][0]["url"]
    assert url == f"http://{COPILOT_ADDRESS}/alerts"

    prometheus = service(compose, "prometheus")
    assert mounts(prometheus)[option(prometheus["command"], "--config.file")] == str(PROMETHEUS_CONFIG)
    (rule_glob,) = prometheus_config["rule_files"]
    assert mounts(prometheus)[str(Path(rule_glob).parent)] == str(ROOT / "alert_rules")
    alertmanager = service(compose, "alertmanager")
    assert mounts(alertmanager)[option(alertmanager["command"], "--config.file")] == str(ALERTMANAGER_CONFIG)


@needs_docker_compose
def test_haproxy_logs_to_the_service_syslog_port_and_fronts_the_demo_backend(compose: dict):
    haproxy = service(compose, "haproxy")
    env = haproxy["environment"]
    assert env["SYSLOG_TARGET"] == f"{SERVICE}:{service(compose, SERVICE)['environment']['SYSLOG_PORT']}"
    backend_port = option(service(compose, "demo-backend")["command"], "--port")
    assert env["DEMO_BACKEND_ADDR"] == f"demo-backend:{backend_port}"
    assert env["FRONTEND_BIND"].rsplit(":", 1)[1] == "8081"
    assert mounts(haproxy)["/usr/local/etc/haproxy/haproxy.cfg"] == str(HAPROXY_CONFIG)
    major, minor = map(int, re.match(r"haproxy:(\d+)\.(\d+)", haproxy["image"]).groups())
    assert (major, minor) >= (2, 6)
    # The traffic goes through HAProxy, so that it is logged.
    assert "http://haproxy:8081" in service(compose, "traffic")["command"]


@needs_docker_compose
def test_every_file_the_stack_mounts_is_in_the_repository(compose: dict):
    sources = [source for svc in compose["services"].values() for source in mounts(svc).values()
               if source.startswith("/")]
    sources += [secret["file"] for secret in compose["secrets"].values()]
    assert len(sources) >= 8
    for source in sources:
        assert Path(source).exists(), source
        assert Path(source).is_relative_to(ROOT), source


@needs_docker_compose
def test_only_the_user_facing_ports_are_published_and_on_loopback_by_default(compose: dict):
    published = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            host_ip, host_port, container = port.split(":")
            assert host_ip == "127.0.0.1", f"{name}: {port}"
            published[host_port] = name
            assert container.split("/")[0] == host_port
    assert published == PUBLISHED


@needs_docker_compose
def test_every_pulled_image_is_pinned_to_a_version(compose: dict):
    for name, svc in compose["services"].items():
        if "build" in svc:
            continue
        repository, _, tag = svc["image"].rpartition(":")
        assert repository and re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: {svc['image']}"


@needs_docker_compose
def test_every_long_running_service_has_a_healthcheck(compose: dict):
    for name, svc in compose["services"].items():
        if name in (SERVICE, REPLICA):
            continue  # the image's own HEALTHCHECK
        if name == "traffic":
            assert svc["healthcheck"]["test"] == ["NONE"]  # it serves nothing; the image's check would fail
            continue
        assert svc["healthcheck"]["test"][0] == "CMD", name


# The image


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_the_image_runs_as_a_user_other_than_root():
    users = [rest for keyword, rest in final_stage(dockerfile_instructions(DOCKERFILE.read_text())) if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_image_installs_the_project_on_python_3_11_and_checks_its_health_endpoint():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    assert re.match(r"python:3\.11[.\-]", args["PYTHON_IMAGE"]) and "slim" in args["PYTHON_IMAGE"]
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the project is installed as a package, not editable"
    (healthcheck,) = [rest for keyword, rest in final_stage(instructions) if keyword == "HEALTHCHECK"]
    assert "/health" in healthcheck and "urllib" in healthcheck
    env = " ".join(rest for keyword, rest in final_stage(instructions) if keyword == "ENV")
    assert "HOST=0.0.0.0" in env and "SYSLOG_HOST=0.0.0.0" in env


def test_the_build_context_holds_only_what_the_image_copies():
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "deny by default: no .venv, var/, .env or .git in the context"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = [rest.split()[:-1] for keyword, rest in dockerfile_instructions(DOCKERFILE.read_text())
              if keyword == "COPY" and "--from" not in rest]
    sources = {source.rstrip("/") for group in copied for source in group if not source.startswith("--")}
    assert sources and sources <= allowed, sources - allowed
    for source in sources:
        assert (ROOT / source).exists(), source


# The dashboard


def promql_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (functions, keywords and label names left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or",
                "unless", "inf", "nan"}
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if expr[match.end():].lstrip().startswith("(") or match.group().lower() in keywords:
            continue
        names.add(match.group())
    return names


def test_promql_metric_names_reads_series_not_functions_or_labels():
    expr = ('histogram_quantile(0.95, max by (backend, le) (rate(a_bucket{backend=~"$backend", x="y z"}'
            '[$__rate_interval] offset 5m))) / on (backend) b:rule:rate1m > 0.5 and c unless d')
    assert promql_metric_names(expr) == {"a_bucket", "b:rule:rate1m", "c", "d"}


def recording_rules() -> set[str]:
    return {rule["record"] for path in (ROOT / "alert_rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
            for rule in group["rules"] if "record" in rule}


def exposed_series() -> set[str]:
    names = set(METRIC_NAMES)
    for name in METRIC_NAMES:
        if name.endswith("_seconds"):  # histograms
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_queries(dashboard: dict) -> list[str]:
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return queries + [annotation["expr"] for annotation in dashboard["annotations"]["list"]]


def panel_metrics(panel: dict) -> set[str]:
    return set().union(*(promql_metric_names(target["expr"]) for target in panel["targets"]))


def test_every_series_the_dashboard_reads_is_exposed_by_the_service_or_recorded_by_the_rules(dashboard: dict):
    known = exposed_series() | recording_rules() | {"ALERTS"}  # ALERTS: Prometheus' own
    for panel in dashboard["panels"]:
        used = panel_metrics(panel)
        assert used, panel["title"]
        assert used <= known, f"{panel['title']}: {used - known}"
    (variable,) = dashboard["templating"]["list"]
    series = re.fullmatch(r"label_values\(([\w:]+), backend\)", variable["query"]["query"]).group(1)
    assert series in known


def test_the_dashboard_has_a_panel_per_golden_signal_and_a_backend_variable(dashboard: dict):
    by_title = {panel["title"].split(":")[0]: panel for panel in dashboard["panels"]}
    latency = [target["expr"] for target in by_title["Latency"]["targets"]]
    assert "histogram_quantile(0.50, backend_le:haproxy_log_request_duration_seconds_bucket:rate1m" in latency[0]
    assert panel_metrics(by_title["Latency"]) >= {
        "backend:haproxy_log_request_duration_seconds:p95_rate1m",
        "backend:haproxy_log_request_duration_seconds:p99_rate1m",
    }
    assert "backend:haproxy_log_requests:rate1m" in panel_metrics(by_title["Traffic"])
    assert panel_metrics(by_title["Errors"]) == {
        "backend:haproxy_log_requests_5xx:ratio_rate1m", "backend:haproxy_log_requests_4xx:ratio_rate1m",
    }
    assert panel_metrics(by_title["Saturation"]) == {
        "job:incident_copilot_redis_memory:usage_ratio", "haproxy_log_queued_requests_total",
    }
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "backend" and variable["includeAll"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if "backend" in target["legendFormat"]:
                assert 'backend=~"$backend"' in target["expr"], target["expr"]


def test_the_dashboard_reads_the_provisioned_datasource_from_the_mounted_folder(dashboard: dict):
    provisioning = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioning["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    sources = [panel["datasource"] for panel in dashboard["panels"]]
    sources += [target["datasource"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert all(source == {"type": "prometheus", "uid": datasource["uid"]} for source in sources)
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


@needs_docker_compose
def test_grafana_mounts_the_provisioning_and_dashboards_where_they_point(compose: dict):
    grafana = mounts(service(compose, "grafana"))
    assert grafana["/etc/grafana/dashboards"] == str(DASHBOARD.parent)
    assert grafana["/etc/grafana/provisioning/datasources"] == str(GRAFANA / "provisioning" / "datasources")
    assert grafana["/etc/grafana/provisioning/dashboards"] == str(GRAFANA / "provisioning" / "dashboards")
    home = service(compose, "grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"/etc/grafana/dashboards/{DASHBOARD.name}"


@pytest.mark.promtool
@needs_promtool
def test_promtool_parses_every_dashboard_query(dashboard: dict, tmp_path: Path):
    # Each query as a recording rule, Grafana's variables replaced by what they expand to.
    rules = [{"record": f"dashboard:query_{index}",
              "expr": expr.replace("$backend", ".*").replace("$__rate_interval", "1m")}
             for index, expr in enumerate(dashboard_queries(dashboard))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# HAProxy and the demo backend


def haproxy_env(**addresses: str) -> dict[str, str]:
    return {**os.environ, "TZ": "UTC", **addresses}


@needs_haproxy
def test_haproxy_accepts_the_config_with_loopback_addresses():
    env = haproxy_env(FRONTEND_BIND=":8081", DEMO_BACKEND_ADDR="127.0.0.1:8000", SYSLOG_TARGET="127.0.0.1:5140")
    result = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True,
                            env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_haproxy
def test_haproxy_accepts_the_replicas_config_and_checks_each_replica_health():
    env = haproxy_env(LB_BIND=":8090", COPILOT_REPLICAS_ADDR="127.0.0.1:8080")
    result = subprocess.run(["haproxy", "-c", "-f", str(REPLICAS_HAPROXY_CONFIG)], capture_output=True, text=True,
                            env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "option httpchk GET /health" in REPLICAS_HAPROXY_CONFIG.read_text(encoding="utf-8")


def load_demo_backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_backend", DEMO_BACKEND)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


demo = load_demo_backend()


def test_a_failing_backend_fails_the_share_of_requests_it_is_told_to():
    mode = demo.switched(demo.Mode(), "failing", {"pct": "25", "status": "503"})
    rng = random.Random(7)
    statuses = [demo.planned_answer(mode, rng)[0] for _ in range(4000)]
    assert set(statuses) == {200, 503}
    assert statuses.count(503) / len(statuses) == pytest.approx(0.25, abs=0.03)


def test_a_slow_backend_answers_within_ten_percent_of_its_delay():
    mode = demo.switched(demo.Mode(), "slow", {"delay_ms": "2000"})
    delays = [demo.planned_answer(mode, random.Random(seed))[1] for seed in range(200)]
    assert min(delays) >= 1.8 and max(delays) <= 2.2


@pytest.mark.parametrize("name, query", [
    ("broken", {}), ("failing", {"status": "200"}), ("failing", {"pct": "101"}), ("slow", {"delay_ms": "x"}),
])
def test_a_mode_switch_that_cannot_work_is_refused(name: str, query: dict[str, str]):
    with pytest.raises(demo.ModeError):
        demo.switched(demo.Mode(), name, query)


async def test_the_mode_is_switched_over_http_and_health_ignores_it(aiohttp_client):
    client = await aiohttp_client(demo.create_app(rng=random.Random(1)))
    assert (await client.get("/api/items")).status == 200
    response = await client.put("/_demo/mode/failing", params={"status": "502"})
    assert (await response.json())["mode"] == "failing"
    assert (await client.get("/api/items")).status == 502
    assert (await client.get("/_demo/health")).status == 200
    assert (await (await client.get("/_demo/mode")).json())["status"] == 502
    assert (await client.put("/_demo/mode/sideways")).status == 400
    await client.put("/_demo/mode/healthy")
    assert (await client.get("/api/items")).status == 200


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def http(method: str, url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class DemoStack:
    """deploy/haproxy/haproxy.cfg in front of deploy/demo_backend.py, logging to a UDP socket."""

    def __init__(self, tmp_path: Path) -> None:
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind(("127.0.0.1", 0))
        self.sink.settimeout(10)
        backend_port, self.frontend_port = free_port(), free_port()
        self.backend = subprocess.Popen(
            [sys.executable, str(DEMO_BACKEND), "serve", "--host", "127.0.0.1", "--port", str(backend_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: http("GET", f"http://127.0.0.1:{backend_port}/_demo/health") == 200, "the demo backend")
        self.haproxy_log = tmp_path / "haproxy.out"
        with self.haproxy_log.open("wb") as out:
            self.haproxy = subprocess.Popen(
                ["haproxy", "-db", "-f", str(HAPROXY_CONFIG)], stdout=out, stderr=subprocess.STDOUT,
                env=haproxy_env(FRONTEND_BIND=f"127.0.0.1:{self.frontend_port}",
                                DEMO_BACKEND_ADDR=f"127.0.0.1:{backend_port}",
                                SYSLOG_TARGET=f"127.0.0.1:{self.sink.getsockname()[1]}"))
        # /_demo/ goes through to the backend once HAProxy counts it up, and is never logged.
        wait_until(lambda: self.request("GET", "/_demo/health") == 200, "HAProxy to see the backend up")

    def request(self, method: str, path: str) -> int:
        return http(method, f"http://127.0.0.1:{self.frontend_port}{path}")

    def next_record(self) -> LogRecord:
        datagram = self.sink.recv(65535)
        (line,) = message_lines(datagram)
        return parse_httplog_line(line, timezone.utc)

    def close(self) -> None:
        for process in (self.haproxy, self.backend):
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        self.sink.close()


@pytest.fixture
def demo_stack(tmp_path: Path) -> Iterator[DemoStack]:
    stack = DemoStack(tmp_path)
    yield stack
    stack.close()


@pytest.mark.e2e
@needs_haproxy
def test_haproxy_logs_each_demo_mode_as_lines_the_service_parses(demo_stack: DemoStack):
    assert demo_stack.request("GET", "/api/items") == 200
    record = demo_stack.next_record()
    assert (record.frontend, record.backend, record.server) == ("web", "api", "demo1")
    assert (record.path, record.status, record.termination_state) == ("/api/items", 200, "----")

    assert demo_stack.request("PUT", "/_demo/mode/slow?delay_ms=400") == 200
    assert demo_stack.request("GET", "/haproxy/health") == 200
    assert demo_stack.request("GET", "/api/slow") == 200
    record = demo_stack.next_record()  # neither the switch nor HAProxy's own health was logged
    assert record.path == "/api/slow" and record.time_active >= 360

    assert demo_stack.request("PUT", "/_demo/mode/failing") == 200
    assert demo_stack.request("GET", "/api/fail") == 500
    record = demo_stack.next_record()
    assert (record.status, record.termination_state) == (500, "----")  # the backend's own answer

    demo_stack.backend.terminate()
    demo_stack.backend.wait(10)
    assert demo_stack.request("GET", "/api/stopped") == 503
    record = demo_stack.next_record()
    assert record.status == 503 and record.termination_state.startswith("SC")  # HAProxy's answer
