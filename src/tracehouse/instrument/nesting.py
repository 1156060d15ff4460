"""Model calls recorded twice: a framework's model span (LangChain's ``ChatOpenAI``, an OpenAI
Agents SDK response) around the span of the SDK call it makes, when the SDK is instrumented
too. Both spans describe one call; counting both would double a run's tokens and cost.

:class:`NestedCalls` watches the spans of this process end (an inner span ends before the span
around it): a span that ends with a model call inside it passes that on to its parent, and a
model-call span with one inside it is a wrapper, recorded as a step (``tracehouse.node.type =
step``), so only the innermost span, the SDK's, counts as the call. "Inside" is a descendant,
or, for instrumentors that do not make their spans current (``DETACHED_SCOPES``: the SDK call
then hangs from the same parent), a sibling from another instrumentor that started before the
call and is still open when it ends. Spans from other processes are not seen here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from tracehouse.conventions import node_type
from tracehouse.vocabulary import NodeType

# Instrumentation scopes whose spans are never the current span (OpenInference's LangChain
# tracer: LangChain callbacks cannot detach a context reliably).
DETACHED_SCOPES = frozenset({"openinference.instrumentation.langchain"})
_MARKS = 100_000  # spans marked as holding a model call that have not ended (yet): a bound


def is_model_call(attributes: Any) -> bool:
    """Whether a span's attributes make it an LLM call, as the receiver classifies it. The
    attributes are read in place (this runs at the end of every span); a classifying attribute
    that is not text, which the receiver would not match either, makes it no call."""
    try:
        return node_type(attributes or {}) is NodeType.LLM
    except (AttributeError, TypeError, ValueError):
        return False


def _scope(span: Any) -> str:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else ""


def _parent_id(span: Any) -> int | None:
    parent = span.parent
    return parent.span_id if parent is not None and not parent.is_remote else None


class NestedCalls:
    def __init__(self) -> None:
        self._inside: OrderedDict[int, None] = OrderedDict()  # open spans with a model call inside
        self._detached: dict[tuple[int, int | None], dict[int, int]] = {}  # (trace, parent) -> {id: start}
        self._lock = threading.Lock()

    def started(self, span: Any) -> None:
        if _scope(span) in DETACHED_SCOPES:
            with self._lock:
                key = (span.context.trace_id, _parent_id(span))
                self._detached.setdefault(key, {})[span.context.span_id] = span.start_time or 0

    def _mark(self, span_id: int) -> None:
        self._inside[span_id] = None
        if len(self._inside) > _MARKS:  # marks of spans that never end here
            self._inside.popitem(last=False)

    def ended(self, span: Any) -> bool:
        """Note the span's end; true if it is a model call around another model call."""
        span_id, parent = span.context.span_id, _parent_id(span)
        model_call = is_model_call(span.attributes)
        with self._lock:
            wraps = self._inside.pop(span_id, 0) is None
            siblings = self._detached.get((span.context.trace_id, parent))
            if siblings is not None:
                siblings.pop(span_id, None)
                if not siblings:
                    del self._detached[(span.context.trace_id, parent)]
            if model_call or wraps:  # a model call is inside the parent too
                if parent is not None:
                    self._mark(parent)
                if model_call and siblings and _scope(span) not in DETACHED_SCOPES:
                    for sibling, start in siblings.items():
                        if start <= (span.start_time or 0):
                            self._mark(sibling)
        return model_call and wraps
