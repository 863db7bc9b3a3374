"""Fixtures of the delivery tests: the local chat receivers and a notifications file pointing at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chat_receivers import BOT_TOKEN, HMAC_SECRET, ChatReceivers

PUBLIC_URL = "https://copilot.example.com"
# Where a message may link: the service's pages, and what the alert fixtures carry.
ALLOWED = (PUBLIC_URL + "/", "http://alertmanager:9093", "https://git.example.com/", "http://prometheus:9090/",
           "http://vm:19093", "http://127.0.0.1/graph")


def allowed_link(url: str) -> bool:
    return url.startswith(ALLOWED)


@pytest.fixture
async def receivers(aiohttp_server) -> ChatReceivers:
    chat = ChatReceivers(allowed_link=allowed_link)
    server = await aiohttp_server(chat.app())
    chat.base = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    return chat


def notifications_file(directory: Path, base: str, *, give_up_after: str = "60s", extra: str = "",
                       receivers: str | None = None, connections_per_host: int = 4) -> Path:
    """Slack (bot and webhook), Teams and a signed webhook, all for every incident; secrets in files."""
    secrets = directory / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "slack-webhook").write_text(f"{base}/slack/webhook/oncall\n")
    (secrets / "slack-token").write_text(BOT_TOKEN + "\n")
    (secrets / "teams").write_text(f"{base}/teams/oncall\n")
    (secrets / "hmac").write_text(HMAC_SECRET.decode() + "\n")
    path = directory / "notifications.yml"
    path.write_text(f"""\
global:
  give_up_after: {give_up_after}
  backoff_first: 50ms
  backoff_cap: 200ms
  connections_per_host: {connections_per_host}
route:
  receiver: oncall
{extra}
receivers:
{receivers or f'''  - name: oncall
    slack_configs:
      - token_file: {secrets / "slack-token"}
        channel: "#incidents"
        api_base: {base}/slack/api/
      - api_url_file: {secrets / "slack-webhook"}
    msteams_configs:
      - webhook_url_file: {secrets / "teams"}
    webhook_configs:
      - url: {base}/hook/pager
        hmac_secret_file: {secrets / "hmac"}
'''}""")
    return path
