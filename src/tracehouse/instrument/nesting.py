"""Model calls recorded twice: a framework's model span (LangChain's ``ChatOpenAI``, an OpenAI
Agents SDK response) around the span of the SDK call it makes, when the SDK is instrumented
too. Both spans describe one call; counting both would double a run's tokens and cost.

:class:`NestedCalls` watches the spans of this process start and end (an inner call ends
before the span around it): a model-call span that ends with another model call inside it is
a wrapper, and is recorded as a step (``tracehouse.node.type = step``), so only the innermost
span, the SDK's, counts as the call. "Inside" is a descendant, or, for instrumentors that do not
make their spans current (``DETACHED_SCOPES``: the SDK call then hangs from the same parent), a
sibling from another instrumentor that started before the call and is still open when it ends.
Spans from other processes are not seen here.
"""

from __future__ import annotations

import threading
from typing import Any

from tracehouse.ingest.normalize import node_type
from tracehouse.model import NodeType

# Instrumentation scopes whose spans are never the current span (OpenInference's LangChain
# tracer: LangChain callbacks cannot detach a context reliably).
DETACHED_SCOPES = frozenset({"openinference.instrumentation.langchain"})


def is_model_call(attributes: Any) -> bool:
    """Whether a span's attributes make it an LLM call, as the receiver classifies it."""
    return node_type({k: v for k, v in (attributes or {}).items() if isinstance(v, str)}) is NodeType.LLM


def _scope(span: Any) -> str:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else ""


class NestedCalls:
    def __init__(self) -> None:
        self._parents: dict[int, int | None] = {}  # open spans of this process: id -> parent id
        self._detached: dict[tuple[int, int | None], dict[int, int]] = {}  # (trace, parent) -> {id: start}
        self._wrapping: set[int] = set()  # open spans with a model call inside them
        self._lock = threading.Lock()

    def started(self, span: Any) -> None:
        parent = span.parent
        parent_id = parent.span_id if parent is not None and not parent.is_remote else None
        span_id = span.context.span_id
        with self._lock:
            self._parents[span_id] = parent_id
            if _scope(span) in DETACHED_SCOPES:
                self._detached.setdefault((span.context.trace_id, parent_id), {})[span_id] = span.start_time or 0

    def ended(self, span: Any) -> bool:
        """Note the span's end; true if it is a model call around another model call."""
        span_id = span.context.span_id
        model_call = is_model_call(span.attributes)
        with self._lock:
            parent = self._parents.pop(span_id, None)
            key = (span.context.trace_id, parent)
            siblings = self._detached.get(key)
            if siblings is not None:
                siblings.pop(span_id, None)
                if not siblings:
                    del self._detached[key]
            wraps = span_id in self._wrapping
            self._wrapping.discard(span_id)
            if not model_call:
                return False
            if siblings and _scope(span) not in DETACHED_SCOPES:
                self._wrapping.update(s for s, start in siblings.items() if start <= (span.start_time or 0))
            while parent is not None and parent in self._parents and parent not in self._wrapping:
                self._wrapping.add(parent)
                parent = self._parents[parent]
        return wraps
