"""Dependency providers for the routes, and their `Annotated` aliases.

Each provider takes the request and builds what it returns from the process's resources
(`core.resources.resources_of`): `make resource` adds one per resource.
"""
