"""`incident-copilot`: serve, ingest, simulate, the analysis commands and the memory of past incidents."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import ValidationError

from ..settings import THRESHOLD_SETTINGS, Settings


def _utc(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def cmd_serve(args: argparse.Namespace) -> int:
    from ..logging_setup import configure_logging
    from ..workers import cores, worker_count

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    host = args.host or settings.host
    port = args.port or settings.port
    workers = worker_count(settings.serve_workers if args.workers is None else args.workers, cores())
    if workers == 1 or args.in_group:
        return _serve_one(settings, host, port, in_group=args.in_group)
    if port == 0:
        print("--workers above 1 needs a fixed --port: each worker would listen on a port of its own",
              file=sys.stderr)
        return 2
    from ..notify import ConfigError, load_config
    from ..workers import WorkerGroup, run, worker_command

    if settings.notify_config is not None:  # read here, once: a worker refusing it would be restarted forever
        try:
            load_config(settings.notify_config)
        except ConfigError as exc:
            return _config_refused(exc)
    return run(WorkerGroup(count=workers, command=worker_command(host, port), redis_url=settings.redis_url,
                           data_dir=settings.data_dir))


def _config_refused(error: Exception) -> int:
    print(f"the notifications file cannot be used:\n{error}", file=sys.stderr)
    return 2


def _serve_one(settings: Settings, host: str, port: int, *, in_group: bool) -> int:
    """This process serves HTTP (and syslog, the worker) alone, or as one of a group sharing its ports."""
    from ..app import create_app
    from ..appkeys import SHARED_PORTS
    from ..http import ServerLimits, serve
    from ..notify import ConfigError
    from ..workers import stop_with_parent

    if in_group:
        stop_with_parent()
    try:
        app = create_app(settings)
    except ConfigError as exc:
        return _config_refused(exc)
    app[SHARED_PORTS] = in_group
    serve(app, host, port, ServerLimits.from_settings(settings), reuse_port=in_group)
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import ingest_file

    settings = Settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    token = settings.ingest_token.get_secret_value() if settings.ingest_token else None
    return asyncio.run(ingest_file(args.file, url=url, token=token, batch_lines=args.batch, quiet=args.quiet))


def cmd_simulate(args: argparse.Namespace) -> int:
    from ingestion import generate_lines

    from ..intake import log_timezone

    tz = log_timezone(Settings().log_timezone)  # write dates the way the service will read them
    start = args.start or (datetime.now(timezone.utc) - timedelta(minutes=args.minutes))
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for line in generate_lines(args.scenario, start=start, minutes=args.minutes, rps=args.rps, seed=args.seed,
                                   tz=tz):
            out.write(line)
            out.write("\n")
    except BrokenPipeError:
        return 0
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .analyze import analyze_remote

    settings = Settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    token = settings.analyze_token.get_secret_value() if settings.analyze_token else None
    read_token = settings.read_token.get_secret_value() if settings.read_token else None
    return asyncio.run(analyze_remote(url, token=token, at=args.at, window=args.window, backend=args.backend,
                                      as_json=args.json, read_token=read_token))


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import run_scenarios

    return asyncio.run(run_scenarios(Settings(), scenarios=args.scenario or None))


def cmd_similar(args: argparse.Namespace) -> int:
    from .memory import similar

    return similar(Settings(), args.target, limit=args.limit)


def cmd_import_postmortems(args: argparse.Namespace) -> int:
    from .memory import import_postmortems

    return import_postmortems(Settings(), Path(args.folder))


def cmd_rules(args: argparse.Namespace) -> int:
    from ..resources import resource_dir
    from ..rules import stale_rule_files, write_rules

    thresholds = Settings().thresholds
    directory = Path(args.out) if args.out else resource_dir("alert_rules")
    if args.check:
        stale = stale_rule_files(thresholds, directory, setting_names=THRESHOLD_SETTINGS)
        if stale:
            print(f"out of date with the settings: {', '.join(stale)} "
                  f"(run: incident-copilot rules --out {directory})", file=sys.stderr)
            return 1
        print(f"{directory}: up to date")
        return 0
    for path in write_rules(thresholds, directory, setting_names=THRESHOLD_SETTINGS):
        print(path)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run

    return asyncio.run(run(Settings(), consumer=args.consumer))


def cmd_notify(args: argparse.Namespace) -> int:
    from .notify import check

    return check(Path(args.config) if args.config else Settings().notify_config)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import main as demo

    return demo()


def build_parser() -> argparse.ArgumentParser:
    from ingestion import SCENARIOS

    parser = argparse.ArgumentParser(prog="incident-copilot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (and syslog listener, worker)")
    serve.add_argument("--host", help="listen address (default HOST)")
    serve.add_argument("--port", type=int, help="listen port (default PORT)")
    serve.add_argument("--workers", type=int, help="processes sharing the ports (default SERVE_WORKERS; 0: one per "
                                                   "core; 1: this process alone)")
    serve.add_argument("--in-group", action="store_true", help=argparse.SUPPRESS)  # a worker the parent started
    serve.set_defaults(func=cmd_serve)

    ingest = sub.add_parser("ingest", help="send a log file to a running service")
    ingest.add_argument("file", help="HAProxy log lines or NDJSON; '-' for standard input")
    ingest.add_argument("--url", help="service URL (default http://HOST:PORT)")
    ingest.add_argument("--batch", type=int, default=5000, help="lines per request (default 5000)")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    ingest.set_defaults(func=cmd_ingest)

    simulate = sub.add_parser("simulate", help="write a scenario's HAProxy lines")
    simulate.add_argument("scenario", choices=SCENARIOS)
    simulate.add_argument("--start", type=_utc, help="first line's time (default: MINUTES ago)")
    simulate.add_argument("--minutes", type=int, default=15, help="duration (default 15)")
    simulate.add_argument("--rps", type=float, default=20.0, help="mean requests per second (default 20)")
    simulate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    simulate.add_argument("--output", "-o", help="file to write (default standard output)")
    simulate.set_defaults(func=cmd_simulate)

    analyze = sub.add_parser("analyze", help="ask a running service for an analysis and print the report")
    analyze.add_argument("--at", type=_utc, help="end of the window (RFC 3339; default now)")
    analyze.add_argument("--window", type=int, help="minutes before --at (default ANALYSIS_WINDOW_MINUTES)")
    analyze.add_argument("--backend", help="analyse one backend only")
    analyze.add_argument("--json", action="store_true", help="print the report as JSON")
    analyze.add_argument("--url", help="service URL (default http://HOST:PORT)")
    analyze.set_defaults(func=cmd_analyze)

    evaluate = sub.add_parser("eval", help="replay every scenario through ingestion and analysis; print a table")
    evaluate.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    evaluate.set_defaults(func=cmd_eval)

    similar = sub.add_parser("similar", help="the past incidents most like an incident or a post-mortem file")
    similar.add_argument("target", help="an incident id (inc-YYYYMMDD-xxxxxxxx) or a markdown post-mortem")
    similar.add_argument("--limit", type=int, default=5, choices=range(1, 11), metavar="N",
                         help="how many at most (default 5)")
    similar.set_defaults(func=cmd_similar)

    imports = sub.add_parser("import-postmortems",
                             help="copy a folder of existing post-mortems into POSTMORTEM_DIR and archive them")
    imports.add_argument("folder", help="the folder of markdown files; they are only read")
    imports.set_defaults(func=cmd_import_postmortems)

    rules = sub.add_parser("rules", help="render the Prometheus alert rules from the thresholds in the settings")
    rules.add_argument("--out", help="directory to write (default: the packaged alert_rules/)")
    rules.add_argument("--check", action="store_true", help="only check that the files are up to date")
    rules.set_defaults(func=cmd_rules)

    worker = sub.add_parser("worker", help="process stored alert notifications (needs REDIS_URL); run many")
    worker.add_argument("--consumer", help="consumer name in the group (default: host and pid)")
    worker.set_defaults(func=cmd_worker)

    notify = sub.add_parser("notify", help="check the notifications file (NOTIFY_CONFIG)")
    notify.add_argument("--check", action="store_true", required=True, help="validate it and say what it does")
    notify.add_argument("--config", help="the file (default NOTIFY_CONFIG)")
    notify.set_defaults(func=cmd_notify)

    demo = sub.add_parser("demo", help="replay an incident end to end and print the post-mortem it wrote")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        print(settings_refused(exc), file=sys.stderr)
        return 2


def settings_refused(exc: ValidationError) -> str:
    """What is wrong with the environment's settings, by the variable a user sets."""
    lines = ["the settings cannot be used:"]
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  {where}: {error['msg']} (given {error.get('input')!r})" if where else f"  {error['msg']}")
    return "\n".join(lines)

