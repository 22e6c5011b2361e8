"""The ORM models; importing this package registers every table on `Base.metadata`."""

__all__: list[str] = []
