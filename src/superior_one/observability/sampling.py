"""The tracer provider's root sampler, which lets the request middleware decide first.

Imported only when tracing is on: it needs the OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from superior_one.observability.tracing import request_trace_chosen


class RequestFirstSampler(Sampler):
    """Root sampler: records a request the middleware chose, and samples any other
    new trace (a job, a background task) by trace id at ``ratio``.

    The middleware draws its own decision for a request without a caller, so that
    the nine requests in ten it drops skip the SDK's span machinery. Asking the
    ratio sampler again for the tenth would sample only ratio squared of them.
    """

    def __init__(self, ratio: float) -> None:
        self._by_trace_id = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if request_trace_chosen.get():
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
        return self._by_trace_id.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"RequestFirstSampler{{{self._by_trace_id.get_description()}}}"
