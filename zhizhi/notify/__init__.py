"""Notifications through a transactional outbox: rows written with the change that causes them,
delivered by a worker with retries and an idempotency key, through one adapter per channel."""
