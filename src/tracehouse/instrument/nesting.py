"""Model calls recorded twice: a framework's model span (LangChain's ``ChatOpenAI``, an OpenAI
Agents SDK response) around the span of the SDK call it makes, when the SDK is instrumented
too. Both spans describe one call; counting both would double a run's tokens and cost.

:class:`NestedCalls` watches the spans of this process start and end (children end before
their parents): a model-call span that ends with another model-call span inside it is a
wrapper, and is recorded as a step (``tracehouse.node.type = step``), so only the innermost
span, the SDK's, counts as the call. Spans from other processes are not seen here.
"""

from __future__ import annotations

import threading
from typing import Any

from tracehouse.ingest.normalize import node_type
from tracehouse.model import NodeType


def is_model_call(attributes: Any) -> bool:
    """Whether a span's attributes make it an LLM call, as the receiver classifies it."""
    return node_type({k: v for k, v in (attributes or {}).items() if isinstance(v, str)}) is NodeType.LLM


class NestedCalls:
    def __init__(self) -> None:
        self._parents: dict[int, int | None] = {}  # open spans of this process: id -> parent id
        self._wrapping: set[int] = set()  # open spans with a model call inside them
        self._lock = threading.Lock()

    def started(self, span: Any) -> None:
        parent = span.parent
        local = parent is not None and not parent.is_remote
        with self._lock:
            self._parents[span.context.span_id] = parent.span_id if local else None

    def ended(self, span: Any) -> bool:
        """Note the span's end; true if it is a model call around another model call."""
        span_id = span.context.span_id
        model_call = is_model_call(span.attributes)
        with self._lock:
            parent = self._parents.pop(span_id, None)
            wraps = span_id in self._wrapping
            self._wrapping.discard(span_id)
            if model_call:
                while parent is not None and parent in self._parents and parent not in self._wrapping:
                    self._wrapping.add(parent)
                    parent = self._parents[parent]
        return model_call and wraps
