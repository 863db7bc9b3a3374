"""The notifications file (NOTIFY_CONFIG): Alertmanager's shape — a routing tree and receivers.

    global:
      give_up_after: 15m
    route:
      receiver: oncall-slack
      routes:
        - matchers: ['severity="critical"']
          receiver: pager-webhook
          continue: true
    receivers:
      - name: oncall-slack
        slack_configs:
          - api_url_file: /run/secrets/slack-webhook
      - name: pager-webhook
        webhook_configs:
          - url: https://pager.example.com/hooks/incident
            hmac_secret_file: /run/secrets/pager-hmac

Errors name the line of the file they are about. Secrets (`*_file`) are read when the file is
loaded, so a missing secret fails at start and `incident-copilot notify --check`, not at 3 a.m.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .event import EVENT_KINDS, EventKind
from .text import safe_url


class ConfigError(Exception):
    """A notifications file that cannot be used; the message names its file and line."""


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> object:
    """Prometheus' durations: "90s", "15m", "1h30m", "500ms"; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return value
    match = _DURATION.match(value.strip())
    if not value.strip() or match is None:
        raise ValueError(f"not a duration such as 30s, 15m or 1h: {value!r}")
    h, m, s, ms = (int(g) if g else 0 for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GlobalConfig(_Strict):
    give_up_after: float = Field(900.0, gt=0, description="A delivery still failing this long after its event is given up.")
    timeout: float = Field(10.0, gt=0, description="One HTTP attempt's limit.")
    concurrency: int = Field(8, ge=1, le=256, description="Events delivered at once by one process.")
    connections_per_host: int = Field(4, ge=1, le=100, description="HTTP connections at once to one host.")
    backoff_first: float = Field(0.5, gt=0, description="The first wait before another attempt; doubled each time.")
    backoff_cap: float = Field(30.0, gt=0, description="The longest wait between attempts (unless Retry-After asks more).")

    _durations = field_validator("give_up_after", "timeout", "backoff_first", "backoff_cap",
                                 mode="before")(lambda v: parse_duration(v))


_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|([^"\s]*))\s*$')


class Matcher(BaseModel):
    """`name="value"`, `name!="value"`, `name=~"regex"` or `name!~"regex"`; regexes match the whole value."""

    model_config = ConfigDict(frozen=True)

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        match = _MATCHER.match(value)
        if match is None:
            raise ValueError(f'not a matcher such as severity="critical" or backend=~"api|web": {value!r}')
        name, op, quoted, bare = match.groups()
        text = re.sub(r'\\(.)', r'\1', quoted) if quoted is not None else bare
        if op in ("=~", "!~"):
            try:
                re.compile(text)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {text!r}: {exc}") from None
        return {"name": name, "op": op, "value": text}

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


class Route(_Strict):
    receiver: str | None = None
    matchers: list[Matcher] = Field(default_factory=list)
    routes: list["Route"] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")

    def receivers_for(self, labels: dict[str, str], *, inherited: str | None = None) -> list[str]:
        """Alertmanager's walk: children in order, the first match wins unless it says `continue`;
        a node none of whose children match uses its own receiver (or its parent's)."""
        mine = self.receiver or inherited
        found: list[str] = []
        for child in self.routes:
            if not all(m.matches(labels) for m in child.matchers):
                continue
            found += child.receivers_for(labels, inherited=mine)
            if not child.continue_:
                break
        if not found and mine:
            found = [mine]
        return list(dict.fromkeys(found))


class _Integration(_Strict):
    send_resolved: bool = True
    notify: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS),
                                    description="Which events this integration is sent.")

    def wants(self, kind: EventKind) -> bool:
        return kind in self.notify and (kind != "resolved" or self.send_resolved)


def _secret_from(model: BaseModel, value_field: str, file_field: str, *, required: bool) -> None:
    value, path = getattr(model, value_field), getattr(model, file_field)
    if value is not None and path is not None:
        raise ValueError(f"give {value_field} or {file_field}, not both")
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{file_field}: cannot read {path}: {exc.strerror}") from None
        if not text:
            raise ValueError(f"{file_field}: {path} is empty")
        object.__setattr__(model, value_field, SecretStr(text))
    elif required and value is None:
        raise ValueError(f"{value_field} or {file_field} is required")


def _check_url(model: BaseModel, field: str) -> None:
    secret = getattr(model, field)
    if secret is not None and safe_url(secret.get_secret_value()) is None:
        raise ValueError(f"{field} is not an http(s) URL")  # the value itself is a secret: not repeated


class SlackConfig(_Integration):
    """An incoming webhook (`api_url`), or a bot token and a channel (edits its message as the incident changes)."""

    api_url: SecretStr | None = None
    api_url_file: str | None = None
    token: SecretStr | None = None
    token_file: str | None = None
    channel: str | None = None
    api_base: str = Field("https://slack.com/api/", description="The Web API's address (a proxy, a test server).")

    @model_validator(mode="after")
    def _one_way(self) -> "SlackConfig":
        _secret_from(self, "api_url", "api_url_file", required=False)
        _secret_from(self, "token", "token_file", required=False)
        if (self.api_url is None) == (self.token is None):
            raise ValueError("give either api_url (an incoming webhook) or token and channel (a bot)")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel")
        _check_url(self, "api_url")
        if safe_url(self.api_base) is None:
            raise ValueError("api_base is not an http(s) URL")
        if not self.api_base.endswith("/"):
            object.__setattr__(self, "api_base", self.api_base + "/")
        return self


class MSTeamsConfig(_Integration):
    """A Teams Workflows webhook ("Post to a channel when a webhook request is received")."""

    webhook_url: SecretStr | None = None
    webhook_url_file: str | None = None

    @model_validator(mode="after")
    def _url(self) -> "MSTeamsConfig":
        _secret_from(self, "webhook_url", "webhook_url_file", required=True)
        _check_url(self, "webhook_url")
        return self


class WebhookConfig(_Integration):
    """Any HTTP endpoint: a versioned JSON document, signed with HMAC-SHA256 when a secret is given."""

    url: SecretStr | None = None
    url_file: str | None = None
    hmac_secret: SecretStr | None = None
    hmac_secret_file: str | None = None

    @model_validator(mode="after")
    def _url(self) -> "WebhookConfig":
        _secret_from(self, "url", "url_file", required=True)
        _secret_from(self, "hmac_secret", "hmac_secret_file", required=False)
        _check_url(self, "url")
        return self


class Receiver(_Strict):
    name: str = Field(min_length=1, max_length=200)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    msteams_configs: list[MSTeamsConfig] = Field(default_factory=list)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)


class NotifyConfig(_Strict):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: Route
    receivers: list[Receiver]

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)

    def targets(self, labels: dict[str, str]) -> list["Target"]:
        """Every integration of every receiver the route tree picks for these labels."""
        return [t for name in self.route.receivers_for(labels) for t in self.targets_of(name)]

    def targets_of(self, name: str) -> list["Target"]:
        receiver = self.receiver(name)
        found: list[Target] = []
        for kind, configs in (("slack", receiver.slack_configs), ("msteams", receiver.msteams_configs),
                              ("webhook", receiver.webhook_configs)):
            found += [Target(name, kind, index, config) for index, config in enumerate(configs)]
        return found

    def all_targets(self) -> list["Target"]:
        return [t for receiver in self.receivers for t in self.targets_of(receiver.name)]


def _reference_problems(config: NotifyConfig) -> list[tuple[tuple, str]]:
    """Receivers named twice, a top route without one, routes to receivers not defined: (where, what)."""
    problems: list[tuple[tuple, str]] = []
    seen: set[str] = set()
    for index, receiver in enumerate(config.receivers):
        if receiver.name in seen:
            problems.append((("receivers", index, "name"), f"a second receiver named {receiver.name!r}"))
        seen.add(receiver.name)
    if not config.route.receiver:
        problems.append((("route",), "the top route needs a receiver (it takes every incident no other route does)"))

    def walk(route: Route, path: tuple) -> None:
        if route.receiver and route.receiver not in seen:
            problems.append(((*path, "receiver"), f"no receiver is named {route.receiver!r}"))
        for index, child in enumerate(route.routes):
            walk(child, (*path, "routes", index))

    walk(config.route, ("route",))
    return problems


@dataclass(frozen=True)
class Target:
    """One integration of one receiver: where a delivery goes."""

    receiver: str
    integration: Literal["slack", "msteams", "webhook"]
    index: int
    config: SlackConfig | MSTeamsConfig | WebhookConfig

    @property
    def id(self) -> str:
        return f"{self.receiver}/{self.integration}/{self.index}"

    def describe(self) -> str:
        """Where it delivers, in words and without a secret: "oncall (Slack bot, #incidents)"."""
        config = self.config
        if isinstance(config, SlackConfig):
            kind = f"Slack bot, {config.channel}" if config.token is not None else "Slack webhook"
        elif isinstance(config, MSTeamsConfig):
            kind = "Teams workflow"
        else:
            kind = "webhook, signed" if config.hmac_secret is not None else "webhook, unsigned"
        return f"{self.receiver} ({kind})"


# Loading, with lines ------------------------------------------------------------------------------

def load_config(path: Path) -> NotifyConfig:
    """Read and validate a notifications file; `ConfigError` names the line of each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<notifications>") -> NotifyConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping with route and receivers")
    lines: dict[tuple, int] = {}
    _index_lines(node, (), lines)
    try:
        config = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
            message = error["msg"].removeprefix("Value error, ")
            field = message.split(" ", 1)[0].rstrip(":")
            if (*loc, field) in lines:  # a check across fields that names the one at fault
                loc = (*loc, field)
            problems.append(_at(source, loc, lines, message))
        raise ConfigError("\n".join(problems)) from None
    problems = [_at(source, loc, lines, message) for loc, message in _reference_problems(config)]
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _at(source: str, loc: tuple, lines: dict[tuple, int], message: str) -> str:
    where = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    return f"{source}:{_line_of(loc, lines)}: {where or 'top level'}: {message}"


def _index_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)  # a key's own line, if it has one
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            lines[(*path, name)] = key.start_mark.line + 1
            _index_lines(value, (*path, name), lines)
            if name == "global" or name == "continue":  # the models' aliases
                lines[(*path, f"{name}_")] = lines[(*path, name)]
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _line_of(loc: tuple, lines: dict[tuple, int]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1
