"""Clients of other services, in this service's terms."""
