"""Masking of secrets in spans: the log rules applied to every span before export.

Imported only when tracing is on (:func:`.tracing.setup_tracing`), because it
loads OpenTelemetry's SDK.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link
from opentelemetry.util.types import Attributes, AttributeValue

from superior_one.observability.redaction import (
    REDACTED,
    is_sensitive_key,
    redact_query,
    redact_url,
    scrub_text,
)

# Attributes that contain a whole URL or its query: the FMCSA client sends its webKey
# as a query parameter, and a caller may put a token in ours. Both the old and the
# stable semantic-convention names, because an instrumentation emits one or the other.
_URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target"})
_QUERY_ATTRIBUTES = frozenset({"url.query"})


def _scrub_value(name: str, value: AttributeValue) -> AttributeValue:
    if is_sensitive_key(name):
        return REDACTED
    if isinstance(value, str):
        if name in _URL_ATTRIBUTES:
            return redact_url(value)
        if name in _QUERY_ATTRIBUTES:
            return redact_query(value)
        return scrub_text(value)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
        return tuple(scrub_text(item) for item in value)
    return value


def _scrub_attributes(attributes: Attributes) -> Attributes | None:
    """Return a scrubbed copy of ``attributes``, or None when none of them needs masking."""
    if not attributes:
        return None
    scrubbed = {name: _scrub_value(name, value) for name, value in attributes.items()}
    return None if scrubbed == dict(attributes) else scrubbed


class ScrubbingSpanExporter(SpanExporter):
    """A span exporter that masks secrets before handing spans to ``inner``.

    Applies the log rules (:mod:`.redaction`) to span names, attributes, event
    attributes (exception messages and stack traces) and link attributes.
    Spans are scrubbed at export, in the batch processor's thread in production,
    so requests do not pay for it. A span with nothing to mask is passed as is.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_scrub_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _scrub_span(span: ReadableSpan) -> ReadableSpan:
    name = scrub_text(span.name)
    attributes = _scrub_attributes(span.attributes)
    events = [(event, _scrub_attributes(event.attributes)) for event in span.events]
    links = [(link, _scrub_attributes(link.attributes)) for link in span.links]
    if (
        name == span.name
        and attributes is None
        and all(scrubbed is None for _, scrubbed in events)
        and all(scrubbed is None for _, scrubbed in links)
    ):
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes if attributes is None else attributes,
        events=[
            event if scrubbed is None else Event(event.name, scrubbed, event.timestamp)
            for event, scrubbed in events
        ],
        links=[
            link if scrubbed is None else Link(link.context, scrubbed) for link, scrubbed in links
        ],
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
