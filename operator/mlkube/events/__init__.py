"""The CloudEvents that mlkube emits: the versioned catalogue, the extraction of the events an
object's state implies, and their encodings (CloudEvents binary/structured, Azure Event Grid).

Pure: objects in, occurrences and (headers, body) messages out; the outbox and the delivery
(I/O) live elsewhere (docs/notifications.md).
"""
