"""The receiver's per-item checks: ids, the time window, attribute counts and value sizes."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracehouse import semconv
from tracehouse.ingest.checks import Checker, Limits

NOW = 1_790_000_000 * 10**9  # a fixed clock: 2026-09-21
SECOND = 10**9
DAY = 86_400 * SECOND


def traces(*times: tuple[int, int]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n, (start, end) in enumerate(times, 1):
        span = spans.add(trace_id=b"\x01" * 16, span_id=n.to_bytes(8, "big"), name=f"s{n}")
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
    return request


def spans_of(request: ExportTraceServiceRequest) -> list:
    return list(request.resource_spans[0].scope_spans[0].spans)


def check(request, **limits):
    return Checker(Limits(**limits), clock=lambda: NOW).traces(request)


def test_spans_within_the_window_pass_untouched():
    request = traces((NOW - 3650 * DAY + SECOND, NOW - 3650 * DAY + 2 * SECOND), (NOW, NOW + DAY))
    before = request.SerializeToString()
    outcome = check(request)
    assert (outcome.accepted, outcome.rejected, outcome.message("span(s)")) == (2, 0, "")
    assert request.SerializeToString() == before


def test_a_span_from_the_future_is_rejected_with_a_message_a_person_understands():
    request = traces((NOW + 173 * DAY, NOW + 173 * DAY + SECOND), (NOW, NOW + SECOND))
    outcome = check(request)
    assert (outcome.accepted, outcome.rejected) == (1, 1)
    assert [s.name for s in spans_of(request)] == ["s2"]
    message = outcome.message("span(s)")
    assert message.startswith("1 span(s) rejected: span starts 173 days in the future (")
    assert message.endswith("): check the sending host's clock")
    assert list(outcome.rejections) == ["future"]


def test_the_edges_of_the_window():
    skew = 3600
    inside_future = (NOW + skew * SECOND, NOW + skew * SECOND)
    outside_future = (NOW + skew * SECOND + 1, NOW + skew * SECOND + 1)
    inside_past = (NOW - 30 * DAY, NOW - 30 * DAY)
    outside_past = (NOW - 30 * DAY - 1, NOW - 30 * DAY)
    request = traces(inside_future, outside_future, inside_past, outside_past)
    outcome = check(request, max_clock_skew=skew, max_age_days=30)
    assert [s.name for s in spans_of(request)] == ["s1", "s3"]
    assert outcome.rejections["future"][0] == 1 and outcome.rejections["too_old"][0] == 1
    assert "older than any retention keeps (30 days)" in outcome.rejections["too_old"][1]


def test_the_ends_of_the_clock_and_missing_or_reversed_times_are_rejected():
    top = 2**64 - 1
    request = traces((top - 1, top), (NOW, top), (0, 0), (NOW, NOW - 1), (1, 2))
    outcome = check(request)
    assert outcome.accepted == 0 and outcome.rejected == 5
    assert {k: v[0] for k, v in outcome.rejections.items()} == {
        "future": 2,
        "no_start_time": 1,
        "end_before_start": 1,
        "too_old": 1,
    }
    assert "span ends" in outcome.message("span(s)")  # the second one starts fine but ends at the clock's end


def test_an_unfinished_span_without_an_end_time_passes():
    assert check(traces((NOW, 0))).accepted == 1


def test_span_event_times_are_checked_too():
    request = traces((NOW, NOW + SECOND), (NOW, NOW + SECOND))
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].events.add(name="ok", time_unix_nano=NOW)
    spans[1].events.add(name="exception", time_unix_nano=NOW + 400 * DAY)
    outcome = check(request)
    assert [s.name for s in spans_of(request)] == ["s1"]
    assert "span event 'exception' is 400 days in the future" in outcome.message("span(s)")


def test_ids_are_checked():
    request = traces((NOW, NOW), (NOW, NOW), (NOW, NOW))
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[0].trace_id = b"\x00" * 16
    spans[1].span_id = b"\x01" * 7
    spans[2].parent_span_id = b"\x01" * 3
    outcome = check(request)
    assert outcome.accepted == 0 and outcome.rejections["invalid_id"][0] == 3


def test_many_rejections_of_one_kind_give_one_line():
    request = traces(*[(NOW + (200 + n) * DAY, NOW + (200 + n) * DAY) for n in range(200)])
    message = check(request).message("span(s)")
    assert message.startswith("200 span(s) rejected: span starts 200 days in the future")
    assert message.endswith("(and others alike)") and message.count(";") == 0


def test_attributes_over_the_count_limit_are_dropped_and_counted():
    request = traces((NOW, NOW))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for n in range(50):
        span.attributes.add(key=f"k{n}").value.int_value = n
    event = span.events.add(name="e", time_unix_nano=NOW)
    for n in range(12):
        event.attributes.add(key=f"e{n}").value.bool_value = True
    outcome = check(request, max_attributes=10)
    assert outcome.accepted == 1
    assert [kv.key for kv in span.attributes] == [f"k{n}" for n in range(10)] and span.dropped_attributes_count == 40
    assert len(event.attributes) == 10 and event.dropped_attributes_count == 2
    assert "a span had 50 attributes, over the limit of 10: 40 dropped" in outcome.message("span(s)")


def test_oversize_values_are_truncated_and_marked_even_when_nested():
    request = traces((NOW, NOW))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key=semconv.GEN_AI_PROMPT).value.string_value = "é" * 5000  # 10,000 bytes
    nested = span.attributes.add(key="deep").value.kvlist_value.values.add(key="inner")
    nested.value.array_value.values.add().bytes_value = b"\x07" * 3000
    span.attributes.add(key="small").value.string_value = "fits"
    outcome = check(request, max_value_bytes=1024)
    attributes = {kv.key: kv.value for kv in span.attributes}
    prompt = attributes[semconv.GEN_AI_PROMPT].string_value
    assert len(prompt.encode()) <= 1024 and prompt.endswith("…[truncated by tracehouse: 10000 bytes]")
    assert attributes[f"{semconv.TRACEHOUSE_TRUNCATED}.{semconv.GEN_AI_PROMPT}"].int_value > 10_000
    inner = attributes["deep"].kvlist_value.values[0].value.array_value.values[0].bytes_value
    assert len(inner) == 1024 and f"{semconv.TRACEHOUSE_TRUNCATED}.deep" in attributes
    assert attributes["small"].string_value == "fits"
    assert list(outcome.limited) == ["value_size"] and outcome.limited["value_size"][0] == 2


def test_log_records_have_their_own_window_and_limits():
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(time_unix_nano=NOW).body.string_value = "x" * 5000
    records.add(observed_time_unix_nano=NOW + 30 * DAY)  # no time: the observed time counts
    records.add()  # neither: dated by the receiver
    records.add(time_unix_nano=NOW, trace_id=b"\x01" * 3)
    outcome = Checker(Limits(max_value_bytes=1000), clock=lambda: NOW).logs(request)
    assert (outcome.accepted, outcome.rejected) == (2, 2)
    assert set(outcome.rejections) == {"future", "invalid_id"}
    assert len(records[0].body.string_value.encode()) <= 1000
    assert records[1].observed_time_unix_nano == NOW and outcome.dated == 1 and outcome.changed
    assert "log record is 30 days in the future" in outcome.message("log record(s)")


@pytest.mark.parametrize(
    "limits",
    [
        {"max_clock_skew": -1},
        {"max_age_days": 0},
        {"max_age_days": 3651},
        {"max_attributes": 0},
        {"max_value_bytes": 10},
    ],
)
def test_limits_validate_themselves(limits):
    with pytest.raises(ValueError):
        Limits(**limits)


def test_a_request_spread_over_too_many_days_keeps_its_latest_days():
    request = traces(*[(NOW - n * DAY, NOW - n * DAY + SECOND) for n in range(1, 11)] * 2)  # 10 days, twice
    outcome = check(request, max_days_per_request=4)
    kept = {(NOW - s.start_time_unix_nano) // DAY for s in spans_of(request)}
    assert kept == {1, 2, 3, 4} and (outcome.accepted, outcome.rejected) == (8, 12)
    message = outcome.message("span(s)")
    assert message.startswith(
        "12 span(s) rejected: the request's spans start on 10 different days, over the limit of 4"
    )
    assert "send older data in requests of fewer days" in message
    assert check(traces(*[(NOW - n * DAY, NOW - n * DAY) for n in range(1, 5)]), max_days_per_request=4).rejected == 0


def test_the_dropped_attributes_count_saturates_instead_of_overflowing():
    request = traces((NOW, NOW))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.dropped_attributes_count = 2**32 - 10
    for n in range(30):
        span.attributes.add(key=f"k{n}").value.int_value = n
    check(request, max_attributes=5)
    assert span.dropped_attributes_count == 2**32 - 1 and len(span.attributes) == 5


def test_json_that_protobuf_cannot_hold_is_a_bad_request():
    from tracehouse.ingest import otlp

    lone_surrogate = (
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
        + b"01" * 16
        + b'","spanId":"'
        + b"02" * 8
        + b'","name":"\\ud800"}]}]}]}'
    )
    with pytest.raises(otlp.BadRequest, match="not an OTLP traces request"):
        otlp.decode(otlp.TRACES, lone_surrogate, otlp.JSON)


def test_a_bad_request_quoting_a_lone_surrogate_is_answered_with_its_reason():
    from google.rpc import status_pb2

    from tracehouse.ingest import otlp

    # A surrogate where a list of scopes goes: protobuf's parse error quotes the value, and the
    # 400's Status could not hold that message (HTTP 500, found by benchmarks/fuzz.py).
    body = b'{"resourceSpans":[{"scopeSpans":"\\ud800"}]}'
    with pytest.raises(otlp.BadRequest) as refused:
        otlp.decode(otlp.TRACES, body, otlp.JSON)
    assert "\ud800" in str(refused.value)
    for content_type in (otlp.JSON, otlp.PROTOBUF):
        reply = otlp.status_body(otlp.error_status(otlp.INVALID_ARGUMENT, str(refused.value)), content_type)
        status = status_pb2.Status()
        if content_type == otlp.JSON:
            json_format.Parse(reply, status)
        else:
            status.ParseFromString(reply)
        assert status.code == otlp.INVALID_ARGUMENT and "\\ud800" in status.message
    response = otlp.response(otlp.TRACES, 1, "span name '\ud800' refused", otlp.PROTOBUF)
    assert "\\ud800" in otlp.TRACES.response.FromString(response).partial_success.error_message


@pytest.mark.parametrize("field", ['"kind": Infinity', '"kind": 1e999', '"status": {"code": -Infinity}'])
def test_json_numbers_no_integer_can_hold_are_a_bad_request(field):
    from tracehouse.ingest import otlp

    body = (
        '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
        + "01" * 16
        + '","spanId":"'
        + "02" * 8
        + '",'
        + field
        + "}]}]}]}"
    ).encode()
    with pytest.raises(otlp.BadRequest, match="not an OTLP traces request"):
        otlp.decode(otlp.TRACES, body, otlp.JSON)


def test_meaningless_severities_and_retentions_are_read_as_unset():
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from tracehouse.ingest.normalize import Retention, _ttl, normalize_logs

    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for severity in (-1, 256, 2**31 - 1, 9):
        records.add(time_unix_nano=NOW, severity_number=severity).body.string_value = "x"
    stored = normalize_logs(request.resource_logs, tenant="t", retention_for=lambda tenant: Retention())
    assert [r.severity_number for r in stored] == [0, 0, 0, 9]
    assert (_ttl("inf", 30), _ttl("nan", 30), _ttl("-inf", 30), _ttl("45", 30)) == (30, 30, 30, 45)


@pytest.mark.parametrize("details", ["[1, 2]", "7", '"text"', '{"input": [5], "output": {"n": 1}}', '{"input": 12}'])
def test_langfuse_usage_details_that_are_no_object_of_counts_are_read_as_none(details):
    from tracehouse.ingest.normalize import Retention, normalize_spans

    # A JSON array here made the Python normalizer raise on every attempt: the writer retried the
    # batch for ever and stored nothing after it (found by benchmarks/fuzz.py, seed 16).
    request = traces((NOW, NOW + SECOND))
    span = spans_of(request)[0]
    span.attributes.add(key=semconv.GEN_AI_OPERATION_NAME).value.string_value = "chat"
    span.attributes.add(key=semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS).value.string_value = details
    (node,), _ = normalize_spans(request.resource_spans, tenant="t", retention_for=lambda tenant: Retention())
    assert node.usage.input_tokens == (12 if details == '{"input": 12}' else 0) and node.usage.output_tokens == 0
    assert node.attributes[semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS] == details  # kept as it came
