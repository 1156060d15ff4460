"""Content capture: what of prompts, answers and tool I/O leaves the process, and how.

Every payload the instrumentation records goes through :meth:`Capture.encode`: structured
values are masked at the configured JSON paths, serialized to JSON, scrubbed by the redaction
patterns (built-in detectors for secrets, e-mail addresses and card numbers, plus the user's),
then truncated to the size cap with a visible marker. All of it happens before the value is
set on a span, so nothing redacted is ever exported.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tracehouse import semconv
from tracehouse.truncation import truncate

REDACTED = "[REDACTED:{kind}]"
DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern
    accept: Callable[[re.Match], bool] = lambda match: True
    group: int = 0  # the part of the match to replace


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")),
    Detector("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    Detector("bearer_token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{8,}=*)"), group=1),
    Detector("api_key", re.compile(r"\b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d+-)?|live-|test-)?[A-Za-z0-9_\-]{16,}")),
    Detector("api_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b")),
    Detector("api_key", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b")),
    Detector("api_key", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    Detector("api_key", re.compile(r"\bAIza[0-9A-Za-z\-_]{35}\b")),
    Detector(
        "secret",
        re.compile(
            r"(?i)\b(?:api[_-]?key|secret|password|passwd|pwd|access[_-]?token)\b[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{6,})"
        ),
        group=1,
    ),
    Detector("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    Detector(
        "card_number",
        re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
        accept=lambda match: _luhn(re.sub(r"\D", "", match.group(0))),
    ),
)


@dataclass(frozen=True)
class Redactor:
    """Removes secrets and personal data from text and structured values.

    ``patterns``: extra regular expressions whose matches are removed. ``paths``: JSON paths
    whose values are removed wherever they appear in structured payloads: ``$.user.email``
    (from the root), ``password`` (a key at any depth), ``$.messages.*.content`` (``*`` is any
    key; lists are walked through).
    """

    detectors: tuple[Detector, ...] = BUILTIN_DETECTORS
    patterns: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    _compiled: tuple[Detector, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        custom = tuple(Detector("pattern", re.compile(p)) for p in self.patterns)
        object.__setattr__(self, "_compiled", self.detectors + custom)

    def text(self, text: str) -> str:
        for detector in self._compiled:
            text = detector.pattern.sub(lambda m, d=detector: _replace(m, d), text)
        return text

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with the configured paths masked."""
        if not self.paths:
            return value
        paths = [p[2:].split(".") if p.startswith("$.") else ["**", *p.split(".")] for p in self.paths]
        return _mask(value, paths)


def _replace(match: re.Match, detector: Detector) -> str:
    if not detector.accept(match):
        return match.group(0)
    marker = REDACTED.format(kind=detector.kind)
    if detector.group:
        start, end = match.span(detector.group)
        whole_start = match.start()
        text = match.group(0)
        return text[: start - whole_start] + marker + text[end - whole_start :]
    return marker


def _mask(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        # Lists are walked through; a "*" segment may also stand for the list's items.
        consumed = [path[1:] for path in paths if path[0] == "*"]
        if any(not rest for rest in consumed):
            return [REDACTED.format(kind="path") for _ in value]
        return [_mask(item, paths + consumed) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        here, deeper = False, []
        for path in paths:
            head, rest = path[0], path[1:]
            if head == "**":  # matches at any depth: try here, and keep looking below
                deeper.append(path)
                head, rest = rest[0], rest[1:]
            if head in ("*", key):
                if rest:
                    deeper.append(rest)
                else:
                    here = True
        out[key] = REDACTED.format(kind="path") if here else _mask(item, deeper) if deeper else item
    return out


def decoded(value: Any) -> Any:
    """Text that holds JSON (an object or array) as its value; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    return value in ("1", "true", "yes", "on") or value in semconv.CAPTURE_MODES_WITH_CONTENT


@dataclass(frozen=True)
class Capture:
    """Whether content is recorded, and how it is cleaned first."""

    content: bool = True
    redactor: Redactor | None = field(default_factory=Redactor)
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    @classmethod
    def from_options(
        cls,
        content: bool | None = None,
        redact: bool = True,
        patterns: Iterable[str] = (),
        paths: Iterable[str] = (),
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> Capture:
        """The explicit option wins; else the GenAI convention's environment variable; else on."""
        if content is None:
            content = _env_flag(semconv.ENV_CAPTURE_MESSAGE_CONTENT)
        return cls(
            content=True if content is None else content,
            redactor=Redactor(patterns=tuple(patterns), paths=tuple(paths)) if redact else None,
            max_payload_bytes=max_payload_bytes,
        )

    def encode(self, value: Any) -> tuple[str, int | None] | None:
        """The payload as it may leave the process: (text, original size if truncated), or None
        when content capture is off."""
        if not self.content or value is None:
            return None
        if self.redactor is not None and not isinstance(value, str):
            value = self.redactor.value(value)
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if self.redactor is not None:
            text = self.redactor.text(text)
        return truncate(text, self.max_payload_bytes)

    def set(self, span: Any, attribute: str, value: Any) -> None:
        """Set a payload attribute on a span, cleaned; note the original size if truncated."""
        encoded = self.encode(value)
        if encoded is None or not span.is_recording():
            return
        text, original = encoded
        span.set_attribute(attribute, text)
        if original is not None:
            span.set_attribute(f"{semconv.TRACEHOUSE_TRUNCATED}.{attribute}", original)
