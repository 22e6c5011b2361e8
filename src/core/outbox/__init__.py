"""Transactional outbox: rows written with the business change, published by a worker."""
