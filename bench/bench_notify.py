"""Delivery latency: from the alert's webhook in to the message out, over a few hundred incidents.

The service runs as its own process with a real redis-server, in rules mode (no API key), a
notifications file routing every incident to a Slack incoming webhook, a Slack bot and a
signed webhook, all played by local servers that validate what they get (tests/support).
Incidents are opened at `--rate` a second, then resolved; for each message the time from
just before its `POST /alerts` to its arrival at the receiver is kept.

    .venv/bin/python bench/bench_notify.py [--incidents 300] [--rate 20]

"opened" includes the incident's first analysis and "resolved" the check after the
resolution: what the on-call waits for. The outbox's own share is printed too
(`incident_copilot_notification_latency_seconds`, counted from the event's trigger).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for the test doubles under tests/

from harness import exposition_totals, percentile, redis_server, service  # noqa: E402

from tests.support.chat_receivers import BOT_TOKEN, HMAC_SECRET, ChatReceivers  # noqa: E402
from tests.support.incidents import group_payload  # noqa: E402

PATHS = {"slack webhook": "/slack/webhook/oncall", "slack bot": "/slack/api/chat.postMessage",
         "signed webhook": "/hook/pager"}


def notifications_file(directory: Path, base: str) -> Path:
    (directory / "hmac").write_text(HMAC_SECRET.decode())
    path = directory / "notifications.yml"
    path.write_text(f"""\
global: {{give_up_after: 5m, concurrency: 16}}
route: {{receiver: oncall}}
receivers:
  - name: oncall
    slack_configs:
      - api_url: {base}/slack/webhook/oncall
      - token: {BOT_TOKEN}
        channel: "#incidents"
        api_base: {base}/slack/api/
    webhook_configs:
      - url: {base}/hook/pager
        hmac_secret_file: {directory / "hmac"}
""")
    return path


def arrivals(chat: ChatReceivers, name: str, event: str) -> dict[str, float]:
    """Incident number (its alert is StormN) -> arrival time of its `event` message at the receiver `name`.

    The bot's resolution is its edit of the first message (chat.update); its thread reply follows it.
    """
    path = PATHS[name] if not (name == "slack bot" and event == "resolved") else "/slack/api/chat.update"
    found: dict[str, float] = {}
    for r in chat.on(path):
        if "blocks" not in r.body and "event" not in r.body:
            continue  # a thread reply
        kind = r.body.get("event") or ("resolved" if "RESOLVED" in r.body["blocks"][0]["text"]["text"] else "opened")
        number = _STORM.search(orjson.dumps(r.body).decode())
        if kind == event and number:
            found.setdefault(number.group(1), r.at)
    return found


_STORM = re.compile(r"Storm(\d+)\b")


async def wave(session: aiohttp.ClientSession, url: str, chat: ChatReceivers, count: int, rate: float,
               status: str) -> dict[str, list[float]]:
    sent: dict[str, float] = {}

    async def post(index: int) -> None:
        sent[str(index)] = time.monotonic()
        async with session.post(f"{url}/alerts", json=group_payload(index, status=status)) as response:
            assert response.status == 200, await response.text()

    posts = []
    for index in range(count):
        posts.append(asyncio.create_task(post(index)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*posts)
    event = "opened" if status == "firing" else "resolved"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        got = {name: arrivals(chat, name, event) for name in PATHS}
        if all(len(found) >= count for found in got.values()):
            break
        await asyncio.sleep(0.2)
    latencies = {}
    for name, found in got.items():
        latencies[name] = [found[i] - sent[i] for i in sent if i in found]
    return latencies


def report(event: str, latencies: dict[str, list[float]], count: int) -> None:
    for name, values in latencies.items():
        if not values:
            print(f"{event:<9} {name:<15} nothing arrived")
            continue
        print(f"{event:<9} {name:<15} {len(values):>4}/{count}  median {percentile(values, 0.5) * 1000:7.0f} ms"
              f"  p99 {percentile(values, 0.99) * 1000:7.0f} ms  max {max(values) * 1000:7.0f} ms")


async def main(count: int, rate: float) -> None:
    chat = ChatReceivers()
    async with TestServer(chat.app()) as server:
        base = str(server.make_url("")).rstrip("/")
        with tempfile.TemporaryDirectory() as directory, redis_server() as redis_url:
            config = notifications_file(Path(directory), base)
            with service(redis_url, NOTIFY_CONFIG=str(config), PUBLIC_URL="https://copilot.example.com",
                         ANALYSIS_CONCURRENCY="8") as svc:
                async with aiohttp.ClientSession() as session:
                    print(f"{count} incidents at {rate:g}/s, each to a Slack webhook, a Slack bot and a signed webhook")
                    opened = await wave(session, svc.url, chat, count, rate, "firing")
                    resolved = await wave(session, svc.url, chat, count, rate, "resolved")
                    async with session.get(f"{svc.url}/prometheus/metrics") as response:
                        totals = exposition_totals(await response.text())
    report("opened", opened, count)
    report("resolved", resolved, count)
    sent = totals.get("incident_copilot_notifications_sent_total", 0)
    outbox = totals.get("incident_copilot_notification_latency_seconds_sum", 0) / max(1.0, sent)
    print(f"delivered {sent:.0f} messages, {totals.get('incident_copilot_notifications_failed_total', 0):.0f} given up,"
          f" {totals.get('incident_copilot_notifications_retried_total', 0):.0f} retried; refused by the fake services:"
          f" {len(chat.refused)}; mean trigger-to-delivery as the service counts it {outbox * 1000:.0f} ms")
    if chat.refused or sent < count * 6:
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="incidents opened (then resolved) a second")
    args = parser.parse_args()
    asyncio.run(main(args.incidents, args.rate))
