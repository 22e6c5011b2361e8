"""Handlers for events other services publish; like routes, they call the services."""
