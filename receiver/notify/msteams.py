"""Microsoft Teams: an incident event as an Adaptive Card, posted to a Workflows webhook.

The Workflows trigger "When a Teams webhook request is received" takes a message whose one
attachment is the card, and answers 202 once it has queued it. The card keeps to schema
1.4 (what Teams renders on every client) and to Teams' 28 KB message limit. TextBlocks and
FactSets read markdown, so every untrusted string has markdown's characters escaped; the
only links are the card's actions, to known places.
"""

from __future__ import annotations

from typing import Any

import orjson

from .config import MSTeamsConfig
from .content import message
from .event import IncidentEvent
from .notifier import TRANSPORT_ERRORS, NotifyContext, Outcome, judge_status, transport_failure
from .text import clip, markdown, one_line, safe_url

CARD_VERSION = "1.4"
MAX_MESSAGE_BYTES = 28 * 1024
DIAGNOSIS_CHARS = 3000
ACTIONS = 5
_COLORS = {"🔴": "Attention", "🟠": "Warning", "🟡": "Warning", "✅": "Good"}


def card(event: IncidentEvent, *, diagnosis_chars: int = DIAGNOSIS_CHARS) -> dict[str, Any]:
    m = message(event)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": markdown(clip(m.headline, 300)), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": _COLORS.get(m.badge, "Default")},
    ]
    if m.culprit:
        body.append({"type": "TextBlock", "text": f"**Culprit:** {markdown(one_line(m.culprit, 300))}", "wrap": True})
    body.append({"type": "TextBlock", "text": markdown(clip(m.diagnosis or "No diagnosis yet.", diagnosis_chars)),
                 "wrap": True})
    body.append({"type": "FactSet", "facts": [{"title": label, "value": markdown(clip(value, 500))}
                                              for label, value in m.facts]})
    if m.numbers:
        body.append({"type": "TextBlock", "text": "**Headline numbers**", "wrap": True, "spacing": "Medium"})
        body += [{"type": "TextBlock", "text": f"• {markdown(metric)}: {markdown(value)}", "wrap": True,
                  "spacing": "None"} for metric, value in m.numbers]
    if m.recommendations:
        body.append({"type": "TextBlock", "text": "**Next steps**", "wrap": True, "spacing": "Medium"})
        body += [{"type": "TextBlock", "text": f"{i}\\. {markdown(r)}", "wrap": True, "spacing": "None"}
                 for i, r in enumerate(m.recommendations, 1)]
    if m.recheck:
        body.append({"type": "TextBlock", "text": f"**After the resolution:** {markdown(clip(m.recheck, 500))}",
                     "wrap": True})
    body.append({"type": "TextBlock", "text": markdown(clip(m.footer, 300)), "isSubtle": True, "size": "Small",
                 "wrap": True})
    actions = [{"type": "Action.OpenUrl", "title": clip(label, 50), "url": url}
               for label, url in m.links if safe_url(url)][:ACTIONS]
    content: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                               "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
                               "msteams": {"width": "Full"}}
    if actions:
        content["actions"] = actions
    return content


def payload(event: IncidentEvent) -> bytes:
    """The webhook body, its diagnosis shortened until the message fits Teams' limit."""
    chars = DIAGNOSIS_CHARS
    while True:
        body = orjson.dumps({"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": card(event, diagnosis_chars=chars)}]})
        if len(body) <= MAX_MESSAGE_BYTES or chars <= 200:
            return body
        chars //= 2


class MSTeamsWorkflow:
    def __init__(self, config: MSTeamsConfig) -> None:
        assert config.webhook_url is not None
        self._url = config.webhook_url.get_secret_value()

    async def notify(self, ctx: NotifyContext, event: IncidentEvent) -> Outcome:
        try:
            async with ctx.session.post(self._url, data=payload(event),
                                        headers={"Content-Type": "application/json"}) as response:
                return judge_status(response.status, response.headers, await response.text())
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)
