"""Alembic environment: runs on the connection the registry hands over, or on DATABASE_URL for the alembic CLI."""

from alembic import context
from sqlmodel import SQLModel

import registry.models  # noqa: F401  (registers every table on the metadata)

config = context.config
target_metadata = SQLModel.metadata


def _include_name(name, type_, parent_names) -> bool:
    """The library's full-text index differs per database and is made by migration 0008 only, not by a model."""
    from registry.library.search import migration_only

    return not migration_only(name or "", type_)


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the plain `alembic` command line, from the project's alembic.ini
    from registry import create_app

    engine = create_app().extensions["registry"].engine
    with engine.begin() as conn:
        _run(conn)
