"""Slack: an incident event as Block Kit, sent by an incoming webhook or by a bot with the Web API.

Within Block Kit's limits: at most 50 blocks, a header of 150 characters, a section of 3,000
(a longer diagnosis is cut with a link to the rest), ten fields of 2,000, buttons of 75
characters and URLs of 3,000. Every untrusted string is escaped (`&`, `<`, `>`), so it can
neither link nor mention anyone; the only links are the buttons, to known places.

With a bot token the first event posts a message and later ones edit it, with a line in its
thread, instead of adding to the channel. The Web API answers HTTP 200 with
`{"ok": false, "error": ...}` for most failures: the error names whether to try again.
"""

from __future__ import annotations

from typing import Any

import orjson

from .config import SlackConfig
from .content import Message, message
from .event import IncidentEvent
from .notifier import DELIVERED, TRANSPORT_ERRORS, DeliveryError, NotifyContext, Outcome, judge_status, \
    retry_after, transport_failure
from .text import clip, clip_escaped, mrkdwn, mrkdwn_clip, one_line, safe_url

MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELDS = 10
FIELD_CHARS = 2000
BUTTON_CHARS = 75
FALLBACK_CHARS = 3000
CONTEXT_CHARS = 300

# Web API errors worth another attempt; any other is an answer the same request would get again.
# (`fatal_error` is left out: Slack says part of the call may have happened, so a retry could post twice.)
RETRY_ERRORS = frozenset({"ratelimited", "internal_error", "service_unavailable", "request_timeout"})
# The message to edit is gone or can no longer be edited: post a new one instead.
REPOST_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed", "msg_not_found"})


def blocks(event: IncidentEvent) -> list[dict[str, Any]]:
    """The message as Block Kit blocks."""
    m = message(event)
    result: list[dict[str, Any]] = [{
        "type": "header", "text": {"type": "plain_text", "text": clip(f"{m.badge} {m.headline}", HEADER_CHARS),
                                   "emoji": True},
    }]
    result.append(_section(_diagnosis(m)))
    result.append({"type": "section", "fields": [
        {"type": "mrkdwn", "text": f"*{label}*\n{mrkdwn_clip(value, FIELD_CHARS - len(label) - 4)}"}
        for label, value in m.facts[:FIELDS]
    ]})
    if m.numbers:
        result.append(_section("*Headline numbers*\n" + "\n".join(
            f"• `{mrkdwn(metric.replace('`', ''))}` {mrkdwn(value)}" for metric, value in m.numbers)))
    if m.recommendations:
        result.append(_section("*Next steps*\n" + "\n".join(
            f"{i}. {mrkdwn(r)}" for i, r in enumerate(m.recommendations, 1))))
    if m.recheck:
        result.append(_section(f"*After the resolution:* {mrkdwn(m.recheck)}"))
    buttons = [
        {"type": "button", "text": {"type": "plain_text", "text": clip(label, BUTTON_CHARS)}, "url": url,
         "action_id": f"link-{i}"}
        for i, (label, url) in enumerate(m.links) if safe_url(url)
    ]
    if buttons:
        result.append({"type": "actions", "elements": buttons[:25]})
    result.append({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn_clip(m.footer, CONTEXT_CHARS)}]})
    return result[:MAX_BLOCKS]


def fallback_text(event: IncidentEvent) -> str:
    """The top-level `text`: what notifications and screen readers show."""
    return mrkdwn_clip(message(event).summary, FALLBACK_CHARS)


def _diagnosis(m: Message) -> str:
    lead = f"*Culprit:* {mrkdwn(one_line(m.culprit, 300))}\n" if m.culprit else ""
    text = lead + mrkdwn(m.diagnosis or "No diagnosis yet.")
    if len(text) <= SECTION_CHARS:
        return text
    rest = next((url for label, url in m.links if label in ("Post-mortem", "Incident") and safe_url(url)), None)
    more = f" <{mrkdwn(rest)}|full report>" if rest and len(rest) < 1000 else ""
    return lead + mrkdwn_clip(m.diagnosis, SECTION_CHARS - len(lead) - len(more)) + more


def _section(escaped: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip_escaped(escaped, SECTION_CHARS)}}


def payload(event: IncidentEvent) -> dict[str, Any]:
    return {"text": fallback_text(event), "blocks": blocks(event), "unfurl_links": False, "unfurl_media": False}


class SlackWebhook:
    """An incoming webhook: one message per event (a webhook cannot edit what it posted)."""

    def __init__(self, config: SlackConfig) -> None:
        assert config.api_url is not None
        self._url = config.api_url.get_secret_value()

    async def notify(self, ctx: NotifyContext, event: IncidentEvent) -> Outcome:
        try:
            async with ctx.session.post(self._url, data=orjson.dumps(payload(event)),
                                        headers={"Content-Type": "application/json"}) as response:
                body = await response.text()
                return judge_status(response.status, response.headers, body)
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)


class SlackBot:
    """The Web API with a bot token: post the first message, then edit it and reply in its thread."""

    def __init__(self, config: SlackConfig) -> None:
        assert config.token is not None and config.channel
        self._token = config.token.get_secret_value()
        self._channel = config.channel
        self._base = config.api_base

    async def notify(self, ctx: NotifyContext, event: IncidentEvent) -> Outcome:
        thread = ctx.thread or {}
        body = payload(event)
        try:
            if thread.get("ts") and event.kind != "opened":
                edit = {"text": body["text"], "blocks": body["blocks"], "channel": thread["channel"], "ts": thread["ts"]}
                retry, err, _ = await self._call(ctx, "chat.update", edit)
                if err is None:
                    reply = {"channel": thread["channel"], "thread_ts": thread["ts"], "text": fallback_text(event)}
                    retry, err, _ = await self._call(ctx, "chat.postMessage", reply)
                    return retry, err
                if err.reason not in REPOST_ERRORS:
                    return retry, err
            retry, err, answer = await self._call(ctx, "chat.postMessage", {**body, "channel": self._channel})
            if err is None:
                ctx.remember = {"channel": str(answer.get("channel") or self._channel), "ts": str(answer["ts"])}
            return retry, err
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)

    async def _call(self, ctx: NotifyContext, method: str, body: dict) -> tuple[bool, DeliveryError | None, dict]:
        headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": f"Bearer {self._token}"}
        async with ctx.session.post(self._base + method, data=orjson.dumps(body), headers=headers) as response:
            text = await response.text()
            if response.status != 200:
                retry, err = judge_status(response.status, response.headers, text)
                return retry, err, {}
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            return True, DeliveryError(f"{method}: an answer that is not JSON"), {}
        if answer.get("ok") is True and (method != "chat.postMessage" or answer.get("ts")):
            return *DELIVERED, answer
        error = str(answer.get("error") or "no error given")[:100]
        wait = retry_after(response.headers) if error == "ratelimited" else None
        return error in RETRY_ERRORS, DeliveryError(error if error in REPOST_ERRORS else f"{method}: {error}",
                                                    retry_after=wait), answer
