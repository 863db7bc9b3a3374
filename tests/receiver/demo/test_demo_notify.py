"""The demo, given a notifications file, says where it delivered the incident."""

from __future__ import annotations

import pytest

from receiver.demo import run_demo
from tests.receiver.notify.conftest import notifications_file
from tests.support.chat_receivers import ChatReceivers


@pytest.mark.integration
async def test_the_demo_prints_where_it_delivered(tmp_path, capsys, monkeypatch, aiohttp_server) -> None:
    chat = ChatReceivers()
    server = await aiohttp_server(chat.app())
    base = str(server.make_url("")).rstrip("/")
    config = notifications_file(tmp_path, base, receivers=f"""\
  - name: oncall
    slack_configs:
      - api_url: {base}/slack/webhook/oncall
    webhook_configs:
      - url: {base}/hook/pager
        hmac_secret_file: {tmp_path / "secrets" / "hmac"}
""")
    monkeypatch.setenv("NOTIFY_CONFIG", str(config))
    assert await run_demo(tmp_path / "demo", alerting=False) == 0
    out = capsys.readouterr().out
    for line in ("the opened message to oncall (Slack webhook): sent",
                 "the opened message to oncall (webhook, signed): sent",
                 "the resolved message to oncall (Slack webhook): sent",
                 "the resolved message to oncall (webhook, signed): sent"):
        assert line in out, out
    assert [r.body["event"] for r in chat.on("/hook/pager")] == ["opened", "resolved"]
    assert chat.refused == []
