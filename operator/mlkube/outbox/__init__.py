"""Notifications' durable outbox and delivery engine (docs/notifications.md §4).

Plain Python + asyncio, no Kopf: `store.Outbox` keeps events and per-sink deliveries in SQLite
so nothing emitted is lost across a restart, and `engine.Delivery` runs one asyncio worker per
sink that sends them over HTTP with Knative-shaped retries. The handlers layer wires both in.
"""
