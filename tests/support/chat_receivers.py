"""Local HTTP servers that play Slack (incoming webhook and Web API), a Teams Workflows webhook and a
generic signed-webhook receiver, validating what they are sent as those services do (this module
holds no tests; the benchmark uses it too).

What they check: Slack's Block Kit limits (50 blocks, header 150 characters, section 3,000, ten
fields of 2,000, buttons of 75 with URLs of 3,000), the bot token, that an edited message exists,
and the Web API's habit of answering HTTP 200 with `{"ok": false}`; Teams' message envelope,
Adaptive Card elements and 28 KB limit; a generic webhook's HMAC signature and its age.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from aiohttp import web

BOT_TOKEN = "xoxb-test-token"
CHANNELS = {"#incidents": "C0INCIDENT", "C0INCIDENT": "C0INCIDENT"}
HMAC_SECRET = b"shared-secret-for-tests"
SIGNATURE_TOLERANCE = 300


class Invalid(Exception):
    pass


def _check(condition: bool, reason: str) -> None:
    if not condition:
        raise Invalid(reason)


def _text(obj, *, kinds=("plain_text", "mrkdwn"), limit: int) -> str:
    _check(isinstance(obj, dict) and obj.get("type") in kinds, f"text object of type {kinds}")
    text = obj.get("text")
    _check(isinstance(text, str) and 0 < len(text) <= limit, f"text of 1 to {limit} characters")
    return text


# Slack's mrkdwn control sequences: <http…|…>, <!channel>, <@U…>, <#C…>. Only a link may appear, and
# only to a URL the test allows.
_CONTROL = re.compile(r"<([^>]*)>")


def validate_blocks(blocks, *, allowed_link=lambda url: False) -> None:
    """Raise `Invalid` where Slack would answer `invalid_blocks`, or where an untrusted string got through."""
    _check(isinstance(blocks, list) and 0 < len(blocks) <= 50, "1 to 50 blocks")
    action_ids: set[str] = set()
    for block in blocks:
        kind = block.get("type")
        if "block_id" in block:
            _check(len(block["block_id"]) <= 255, "block_id of at most 255 characters")
        texts: list[str] = []
        if kind == "header":
            _text(block.get("text"), kinds=("plain_text",), limit=150)
        elif kind == "section":
            _check("text" in block or "fields" in block, "a section needs text or fields")
            if "text" in block:
                texts.append(_text(block["text"], limit=3000))
            if "fields" in block:
                _check(0 < len(block["fields"]) <= 10, "1 to 10 fields")
                texts += [_text(f, limit=2000) for f in block["fields"]]
        elif kind == "context":
            _check(0 < len(block.get("elements", [])) <= 10, "1 to 10 context elements")
            texts += [_text(e, limit=3000) for e in block["elements"]]
        elif kind == "actions":
            _check(0 < len(block.get("elements", [])) <= 25, "1 to 25 actions")
            for element in block["elements"]:
                _check(element.get("type") == "button", "buttons only")
                _text(element.get("text"), kinds=("plain_text",), limit=75)
                url = element.get("url", "")
                _check(isinstance(url, str) and 0 < len(url) <= 3000, "a button URL of at most 3000 characters")
                _check(allowed_link(url), f"a button to an unexpected place: {url[:80]}")
                ident = element.get("action_id", "")
                _check(ident not in action_ids and len(ident) <= 255, "unique action_id")
                action_ids.add(ident)
        elif kind == "divider":
            pass
        else:
            raise Invalid(f"unknown block type {kind!r}")
        for text in texts:
            for control in _CONTROL.findall(text):
                url = control.split("|", 1)[0].replace("&amp;", "&")
                _check(allowed_link(url), f"a link or mention from the text: <{control[:80]}>")


_CARD_ELEMENTS = {"TextBlock", "FactSet", "ColumnSet", "Container", "Image", "ActionSet"}


def validate_card_message(body: bytes) -> dict:
    _check(len(body) <= 28 * 1024, "a Teams message of at most 28 KB")
    message = orjson.loads(body)
    _check(message.get("type") == "message", 'type "message"')
    attachments = message.get("attachments")
    _check(isinstance(attachments, list) and len(attachments) == 1, "one attachment")
    attachment = attachments[0]
    _check(attachment.get("contentType") == "application/vnd.microsoft.card.adaptive", "an Adaptive Card")
    card = attachment.get("content")
    _check(isinstance(card, dict) and card.get("type") == "AdaptiveCard", "content of type AdaptiveCard")
    _check(card.get("version") in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"), "a schema version Teams renders")
    body_elements = card.get("body")
    _check(isinstance(body_elements, list) and body_elements, "a card body")
    for element in body_elements:
        _check(element.get("type") in _CARD_ELEMENTS, f"a known element, not {element.get('type')!r}")
        if element["type"] == "TextBlock":
            _check(isinstance(element.get("text"), str) and element["text"], "a TextBlock's text")
        if element["type"] == "FactSet":
            for fact in element.get("facts", []):
                _check(isinstance(fact.get("title"), str) and isinstance(fact.get("value"), str), "facts of strings")
    for action in card.get("actions", []):
        _check(action.get("type") == "Action.OpenUrl" and str(action.get("url", "")).startswith(("http://", "https://")),
               "Action.OpenUrl with an http(s) url")
        _check(isinstance(action.get("title"), str), "an action title")
    return card


@dataclass
class Received:
    path: str
    body: dict
    headers: dict[str, str]
    at: float  # time.monotonic()


@dataclass
class SlackMessage:
    channel: str
    ts: str
    blocks: list
    text: str
    thread_ts: str | None = None
    edits: int = 0


@dataclass
class ChatReceivers:
    """One aiohttp app for all of them; answers can be scripted per path with `fail`."""

    allowed_link: object = lambda url: True
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    slack_messages: dict[str, SlackMessage] = field(default_factory=dict)
    scripted: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=lambda: defaultdict(list))
    in_flight: int = 0
    most_in_flight: int = 0
    hold: asyncio.Event | None = None
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))

    def fail(self, path: str, *answers: tuple[int, dict[str, str], str]) -> None:
        """The next requests to `path` are answered these (status, headers, body), then normally."""
        self.scripted[path] += answers

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/slack/webhook/{name}", self._slack_webhook)
        app.router.add_post("/slack/api/{method}", self._slack_api)
        app.router.add_post("/teams/{name}", self._teams)
        app.router.add_post("/hook/{name}", self._hook)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(0.001)  # a receiver takes a moment: lets requests overlap when they can
            script = self.scripted.get(request.path)
            if script:
                status, headers, text = script.pop(0)
                await request.read()
                self.refused.append((request.path, f"scripted {status}"))
                return web.Response(status=status, headers=headers, text=text)
            return await handler(request)
        finally:
            self.in_flight -= 1

    def _keep(self, request: web.Request, body: dict) -> None:
        self.received.append(Received(request.path, body, dict(request.headers), time.monotonic()))

    async def _slack_webhook(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return web.Response(status=400, text="no_text")
        try:
            validate_blocks(body.get("blocks", []), allowed_link=self.allowed_link)
        except Invalid as exc:
            self.refused.append((request.path, str(exc)))
            return web.Response(status=400, text="invalid_blocks")
        self._keep(request, body)
        return web.Response(text="ok")

    async def _slack_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        body = orjson.loads(await request.read())
        channel = CHANNELS.get(body.get("channel", ""))
        if channel is None:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if len(body.get("text", "")) > 40_000:
            return web.json_response({"ok": False, "error": "msg_too_long"})
        if "blocks" in body:
            try:
                validate_blocks(body["blocks"], allowed_link=self.allowed_link)
            except Invalid as exc:
                self.refused.append((request.path, str(exc)))
                return web.json_response({"ok": False, "error": "invalid_blocks"})
        if method == "chat.postMessage":
            if body.get("thread_ts") and body["thread_ts"] not in self.slack_messages:
                return web.json_response({"ok": False, "error": "thread_not_found"})
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            self.slack_messages[ts] = SlackMessage(channel, ts, body.get("blocks", []), body.get("text", ""),
                                                   body.get("thread_ts"))
            self._keep(request, body)
            return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}})
        if method == "chat.update":
            message = self.slack_messages.get(body.get("ts", ""))
            if message is None or message.channel != channel:
                return web.json_response({"ok": False, "error": "message_not_found"})
            message.blocks, message.text, message.edits = body.get("blocks", []), body.get("text", ""), message.edits + 1
            self._keep(request, body)
            return web.json_response({"ok": True, "channel": channel, "ts": message.ts})
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)

    async def _teams(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            validate_card_message(raw)
        except (Invalid, orjson.JSONDecodeError) as exc:
            self.refused.append((request.path, str(exc)))
            return web.json_response({"error": {"code": "InvalidRequestContent", "message": str(exc)}}, status=400)
        self._keep(request, orjson.loads(raw))
        return web.Response(status=202)

    async def _hook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        header = request.headers.get("X-Incident-Copilot-Signature", "")
        if not verify(HMAC_SECRET, raw, header):
            self.refused.append((request.path, "bad signature"))
            return web.Response(status=401, text="bad signature")
        self._keep(request, orjson.loads(raw))
        return web.Response(status=200, text="")


def verify(secret: bytes, body: bytes, header: str, tolerance: int = SIGNATURE_TOLERANCE) -> bool:
    """The recipe of docs/notifications.md, as a receiver would write it."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if "t" not in fields or "v1" not in fields or not fields["t"].isdigit():
        return False
    expected = hmac.new(secret, f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < tolerance
