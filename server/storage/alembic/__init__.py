"""Alembic's environment and the schema revisions (``versions/``), run by ``server.storage.migrations``."""
