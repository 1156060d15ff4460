"""What the receiver checks in each span and log record before it acknowledges them.

The rules, applied per item (one bad span never costs the rest of its request):

- **ids**: a span's trace id is 16 bytes and its span id 8, neither all zero; a parent id is
  empty or 8 bytes; a log record's ids are empty or of those sizes. Otherwise the item is
  rejected.
- **times**: a span starts and ends (and each of its events happens) no further in the future
  than ``max_clock_skew`` and no further in the past than any retention could keep it
  (:data:`~tracehouse.model.MAX_TTL_DAYS`); it does not end before it starts; it has a start
  time. A log record's time (or, when it has none, its observed time) obeys the same window;
  one with neither is observed now.
  Otherwise the item is rejected with a message that says by how much and what to check.
  Rows outside this window would land in partitions that retention drops at once, or that
  the engine cannot represent; checked here, such data never reaches the writer.
- **days**: a request's spans (or log records) start on at most ``max_days_per_request``
  different days; those of the latest days are kept, the others rejected. Each day is a
  partition, and one insert writing hundreds of them takes seconds for everyone.
- **sizes**: at most ``max_attributes`` attributes per span, event or log record (the rest
  are dropped and counted in the item's ``dropped_attributes_count``, as the OpenTelemetry
  SDK's own limits do); a string or bytes value larger than ``max_value_bytes`` is cut to
  that size with a visible marker and its original size noted in
  ``tracehouse.truncated.<attribute>``.

Rejections go back to the client through OTLP partial success, and limits applied go back as
its warning message; both are counted by reason in ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from google.protobuf.message import Message

from tracehouse import semconv
from tracehouse.model import MAX_TTL_DAYS
from tracehouse.truncation import truncate

DEFAULT_MAX_CLOCK_SKEW = 24 * 3600.0  # seconds a sender's clock may run ahead
DEFAULT_MAX_ATTRIBUTES = 1024  # per span, event or log record (the OTel SDK's default is 128)
DEFAULT_MAX_VALUE_BYTES = 1 << 20  # one attribute value or log body, in bytes
# Days (daily partitions) one request's spans may start on: the engine's own default limit of
# partitions an insert block may write, which an import of old data in one request can pass.
DEFAULT_MAX_DAYS_PER_REQUEST = 100

_NS = 1_000_000_000
_ZERO_TRACE_ID = bytes(16)
_UINT32_MAX = 2**32 - 1  # the protobuf type of dropped_attributes_count
_ZERO_SPAN_ID = bytes(8)
_DAY_NS = 86_400 * _NS


@dataclass(frozen=True)
class Limits:
    """What the receiver accepts; validates itself."""

    max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW
    max_age_days: int = MAX_TTL_DAYS
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_days_per_request: int = DEFAULT_MAX_DAYS_PER_REQUEST

    def __post_init__(self) -> None:
        if not 0 <= self.max_clock_skew <= 365 * 86_400:
            raise ValueError("the clock skew allowed must be between 0 seconds and 365 days")
        if not 1 <= self.max_age_days <= MAX_TTL_DAYS:
            raise ValueError(f"the oldest age accepted must be between 1 and {MAX_TTL_DAYS} days")
        if self.max_attributes < 1:
            raise ValueError("at least one attribute per item must be allowed")
        if self.max_days_per_request < 1:
            raise ValueError("at least one day per request must be allowed")
        if self.max_value_bytes < 256:
            raise ValueError("attribute values of at least 256 bytes must be allowed")


@dataclass
class Outcome:
    """What the checks did to one request."""

    accepted: int = 0
    rejected: int = 0
    dated: int = 0  # log records with no time at all, given the receiver's
    rejections: dict[str, list] = field(default_factory=dict)  # reason -> [count, first message]
    limited: dict[str, list] = field(default_factory=dict)  # limit -> [items, first message]

    @property
    def changed(self) -> bool:
        """Whether the request is no longer as it came."""
        return bool(self.rejected or self.limited or self.dated)

    def reject(self, reason: str, message: str) -> None:
        self._note(self.rejections, reason, message)

    def limit(self, kind: str, message: str) -> None:
        self._note(self.limited, kind, message)

    @staticmethod
    def _note(into: dict[str, list], key: str, message: str) -> None:
        entry = into.get(key)
        if entry is None:
            into[key] = [1, message]
        else:
            entry[0] += 1

    def message(self, items: str) -> str:
        """The partial success message: why items were rejected, then the limits applied."""
        parts = [_summary(count, f"{items} rejected", text) for count, text in self.rejections.values()]
        parts += [_summary(count, f"{items} limited", text) for count, text in self.limited.values()]
        return "; ".join(parts)


def _summary(count: int, what: str, first: str) -> str:
    return f"{count} {what}: {first}" + (" (and others alike)" if count > 1 else "")


class Checker:
    """Applies :class:`Limits` to decoded requests, in place."""

    def __init__(self, limits: Limits | None = None, clock: Any = time.time_ns):
        self.limits = limits or Limits()
        self._clock = clock

    def _window(self) -> _Window:
        now = self._clock()
        days = self.limits.max_age_days
        return _Window(now - days * _DAY_NS, now + int(self.limits.max_clock_skew * _NS), now, days)

    def traces(self, request: Message, size: int | None = None) -> Outcome:
        """Check a trace export request; ``size`` is its encoded size when known (no value in
        it can be larger, so a request under the value limit needs no look at its values)."""
        outcome = Outcome()
        window = self._window()
        values = (request.ByteSize() if size is None else size) > self.limits.max_value_bytes
        oldest, newest, cap = window.oldest, window.newest, self.limits.max_attributes
        days: set[int] = set()  # the days the accepted spans start on

        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans = scope_spans.spans
                bad = []
                for index, span in enumerate(spans):  # the hot loop of the receiver: kept flat
                    trace_id, span_id = span.trace_id, span.span_id
                    start, end = span.start_time_unix_nano, span.end_time_unix_nano
                    if (  # the common case, decided at a glance
                        oldest <= start <= newest
                        and (not end or start <= end <= newest)
                        and len(trace_id) == 16
                        and len(span_id) == 8
                        and trace_id != _ZERO_TRACE_ID
                        and span_id != _ZERO_SPAN_ID
                        and len(span.parent_span_id) in (0, 8)
                        and not values
                        and len(span.attributes) <= cap
                        and not span.events
                    ):
                        days.add(start // _DAY_NS)
                        continue
                    problem = self._span(span, window, outcome, values)  # the full check, which says why
                    if problem:
                        bad.append(index)
                        outcome.reject(*problem)
                    else:
                        days.add(start // _DAY_NS)
                _drop(spans, bad, outcome)
        if len(days) > self.limits.max_days_per_request:
            groups = [ss.spans for rs in request.resource_spans for ss in rs.scope_spans]
            self._keep_latest_days(groups, days, lambda span: span.start_time_unix_nano, outcome, "spans start")
        return outcome

    def _keep_latest_days(
        self, groups: list, days: set[int], time_of: Callable[[Any], int], outcome: Outcome, what: str
    ) -> None:
        """Reject the items of all but the latest ``max_days_per_request`` days: each day is a
        partition of its own, and an insert's cost grows with the partitions it writes."""
        limit = self.limits.max_days_per_request
        keep = set(sorted(days)[-limit:])
        message = (
            f"the request's {what} on {len(days)} different days, over the limit of {limit} a request: "
            f"those of the latest {limit} days are kept; send older data in requests of fewer days"
        )
        for items in groups:
            bad = [index for index, item in enumerate(items) if time_of(item) // _DAY_NS not in keep]
            for index in reversed(bad):
                del items[index]
                outcome.reject("too_many_days", message)
            outcome.rejected += len(bad)
            outcome.accepted -= len(bad)

    def logs(self, request: Message, size: int | None = None) -> Outcome:
        outcome = Outcome()
        window = self._window()
        values = (request.ByteSize() if size is None else size) > self.limits.max_value_bytes
        groups = [sl.log_records for rl in request.resource_logs for sl in rl.scope_logs]
        for records in groups:
            _keep(records, lambda record: self._log(record, window, outcome, values), outcome)
        when = lambda record: record.time_unix_nano or record.observed_time_unix_nano  # noqa: E731
        days = {when(record) // _DAY_NS for records in groups for record in records}
        if len(days) > self.limits.max_days_per_request:
            self._keep_latest_days(groups, days, when, outcome, "log records are")
        return outcome

    # --- one item: a (reason, message) when it is rejected, else None --------------------------

    def _span(self, span: Any, window: _Window, outcome: Outcome, values: bool) -> tuple[str, str] | None:
        if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE_ID:
            return "invalid_id", "trace id must be 16 bytes, not all zero"
        if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN_ID:
            return "invalid_id", "span id must be 8 bytes, not all zero"
        if span.parent_span_id and len(span.parent_span_id) != 8:
            return "invalid_id", "parent span id must be empty or 8 bytes"
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if not start:
            return "no_start_time", "span has no start time"
        if end and end < start:
            return "end_before_start", "span ends before it starts"
        problem = _outside("span starts", start, window) or (end and _outside("span ends", end, window))
        if not problem:
            for event in span.events:
                when = event.time_unix_nano
                problem = when and _outside(f"span event {event.name[:80]!r} is", when, window)
                if problem:
                    break
        if problem:
            return problem
        self._limit(span, outcome, "span", values)
        return None

    def _log(self, record: Any, window: _Window, outcome: Outcome, values: bool) -> tuple[str, str] | None:
        if record.trace_id and len(record.trace_id) != 16:
            return "invalid_id", "trace id must be empty or 16 bytes"
        if record.span_id and len(record.span_id) != 8:
            return "invalid_id", "span id must be empty or 8 bytes"
        when = record.time_unix_nano or record.observed_time_unix_nano
        if when:
            problem = _outside("log record is", when, window)
            if problem:
                return problem
        else:  # neither time: observed now, by the receiver (OTLP lets a receiver set it)
            record.observed_time_unix_nano = window.now
            outcome.dated += 1
        self._limit(record, outcome, "log record", values)
        return None

    # --- sizes ---------------------------------------------------------------------------------

    def _limit(self, item: Any, outcome: Outcome, what: str, values: bool) -> None:
        """Cap the attribute counts and, when ``values`` may be too large, the value sizes of a
        span (with its events) or log record."""
        cap = self.limits.max_attributes
        owners = [item, *getattr(item, "events", ())]
        for owner in owners:
            extra = len(owner.attributes) - cap
            if extra > 0:
                del owner.attributes[cap:]
                owner.dropped_attributes_count = min(owner.dropped_attributes_count + extra, _UINT32_MAX)
                outcome.limit(
                    "attributes", f"a {what} had {cap + extra} attributes, over the limit of {cap}: {extra} dropped"
                )
        if not values or item.ByteSize() <= self.limits.max_value_bytes:  # nothing in it can be too large
            return
        for owner in owners:
            notes = {}
            for kv in owner.attributes:
                size = _shrink(kv.value, self.limits.max_value_bytes)
                if size:
                    notes[kv.key] = size
            for key, size in notes.items():
                note = owner.attributes.add()
                note.key = f"{semconv.TRACEHOUSE_TRUNCATED}.{key}"
                note.value.int_value = size
                outcome.limit(
                    "value_size",
                    f"{what} attribute {key[:80]!r} is {size} bytes, over the limit of "
                    f"{self.limits.max_value_bytes}: truncated",
                )
        if what == "log record":
            size = _shrink(item.body, self.limits.max_value_bytes)
            if size:
                cap = self.limits.max_value_bytes
                outcome.limit("value_size", f"a log body is {size} bytes, over the limit of {cap}: truncated")


def _keep(items: Any, check: Any, outcome: Outcome) -> None:
    """Check each item of a repeated field; delete the rejected ones."""
    bad = []
    for index, item in enumerate(items):
        problem = check(item)
        if problem:
            bad.append(index)
            outcome.reject(*problem)
    _drop(items, bad, outcome)


def _drop(items: Any, bad: list[int], outcome: Outcome) -> None:
    for index in reversed(bad):
        del items[index]
    outcome.rejected += len(bad)
    outcome.accepted += len(items)


def _shrink(value: Any, cap: int) -> int:
    """Cut the strings and bytes inside an AnyValue that are over ``cap`` bytes; the original
    size of the value when something was cut, else 0."""
    if value.ByteSize() <= cap:
        return 0
    size = value.ByteSize()
    which = value.WhichOneof("value")
    if which == "string_value":
        value.string_value = truncate(value.string_value, cap)[0]
    elif which == "bytes_value":
        value.bytes_value = value.bytes_value[:cap]
    elif which == "array_value":
        for item in value.array_value.values:
            _shrink(item, cap)
    elif which == "kvlist_value":
        for kv in value.kvlist_value.values:
            _shrink(kv.value, cap)
    return size


class _Window(NamedTuple):
    """The times a row may have: ``oldest`` to ``newest`` ns, seen at ``now``."""

    oldest: int
    newest: int
    now: int
    days: int


def _outside(what: str, ns: int, window: _Window) -> tuple[str, str] | None:
    """Why ``ns`` is outside the window, as (reason, message), or None."""
    if ns > window.newest:
        ahead = _duration(ns - window.now)
        return "future", f"{what} {ahead} in the future ({_when(ns)}): check the sending host's clock"
    if ns < window.oldest:
        return "too_old", (
            f"{what} {_duration(window.now - ns)} in the past ({_when(ns)}), older than any retention keeps "
            f"({window.days} days): check the sending host's clock or the times of imported data"
        )
    return None


def _duration(ns: int) -> str:
    seconds = ns / _NS
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} seconds"


def _when(ns: int) -> str:
    try:
        return datetime.fromtimestamp(ns / _NS, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns after 1970"
