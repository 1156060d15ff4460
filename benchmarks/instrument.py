"""The cost of an instrumented node against a bare OpenTelemetry SDK span.

Both sides open and close a span inside a parent span, through a BatchSpanProcessor whose
exporter does nothing: the bare side with ``tracer.start_as_current_span``, the tracehouse side
with ``tracehouse.node`` inside a ``tracehouse.run`` (which adds the run-id stamping and the
node type). Also measured: an ``llm_call`` recording a response with usage and cost (content
capture on, redaction on), against a bare span setting the same attributes by hand. Reports
nanoseconds per span (best of several rounds, the two sides taking turns) and the ratios. Prints one JSON object.

    .venv/bin/python benchmarks/instrument.py --spans 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from report import print_report

import tracehouse
from tracehouse import semconv


class NoOpExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def compare(pairs: dict, spans: int, rounds: int, flush) -> dict[str, float]:
    """Best nanoseconds per span of each function, the functions taking turns round by round,
    with every processor flushed before each timed round (so no export thread of one side
    runs during the other's round)."""
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(rounds):
        for name, fn in pairs.items():
            flush()
            started = time.perf_counter_ns()
            fn(spans)
            best[name] = min(best[name], (time.perf_counter_ns() - started) / spans)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    bare_provider = TracerProvider(resource=Resource.create({"service.name": "bare"}))
    bare_provider.add_span_processor(BatchSpanProcessor(NoOpExporter(), max_queue_size=1 << 20))
    bare = bare_provider.get_tracer("bare")
    config = tracehouse.configure("bench", exporter=NoOpExporter(), logs=False)

    def flush() -> None:
        bare_provider.force_flush()
        config.flush()

    # a BatchSpanProcessor too

    def bare_nodes(n: int) -> None:
        with bare.start_as_current_span("run"):
            for _ in range(n):
                with bare.start_as_current_span("node"):
                    pass

    def tracehouse_nodes(n: int) -> None:
        with tracehouse.run("bench"):
            for _ in range(n):
                with tracehouse.node("node"):
                    pass

    messages = [{"role": "user", "content": "What is the capital of France?"}]

    def bare_llm(n: int) -> None:
        with bare.start_as_current_span("run"):
            for _ in range(n):
                with bare.start_as_current_span("chat gpt-4o-mini") as span:
                    span.set_attribute(semconv.GEN_AI_OPERATION_NAME, "chat")
                    span.set_attribute(semconv.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
                    span.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, json.dumps(messages))
                    span.set_attribute(
                        semconv.GEN_AI_OUTPUT_MESSAGES, json.dumps([{"role": "assistant", "content": "Paris."}])
                    )
                    span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, 12)
                    span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 2)

    def tracehouse_llm(n: int) -> None:
        with tracehouse.run("bench"):
            for _ in range(n):
                with tracehouse.llm_call("gpt-4o-mini", messages=messages) as call:
                    call.record_response("Paris.", input_tokens=12, output_tokens=2)

    for fn in (bare_nodes, tracehouse_nodes, bare_llm, tracehouse_llm):
        fn(1000)  # warm up
    results = compare({"bare_node": bare_nodes, "tracehouse_node": tracehouse_nodes}, args.spans, args.rounds, flush)
    results |= compare(
        {"bare_llm_call": bare_llm, "tracehouse_llm_call": tracehouse_llm}, args.spans // 5, args.rounds, flush
    )
    print_report(
        {
            "benchmark": "instrument",
            "spans": args.spans,
            "ns_per_span": {k: round(v) for k, v in results.items()},
            "node_ratio": round(results["tracehouse_node"] / results["bare_node"], 2),
            "llm_call_ratio": round(results["tracehouse_llm_call"] / results["bare_llm_call"], 2),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
