"""Migrations apply on an empty database, a second run changes nothing, and edited history is refused."""

from __future__ import annotations

import psycopg
import pytest

from clawhost_control_api.db.migrations import MigrationError, load_migrations, migrate

pytestmark = pytest.mark.services


def _schema(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' ORDER BY 1, 2"
        ).fetchall()


def test_migrations_apply_once_and_twice_changes_nothing(database_url: str) -> None:
    versions = [m.version for m in load_migrations()]
    assert migrate(database_url) == versions
    schema = _schema(database_url)
    assert ("users", "password_hash", "text") in schema
    assert migrate(database_url) == []
    assert _schema(database_url) == schema
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == versions


def test_an_edited_applied_migration_is_refused(database_url: str) -> None:
    migrate(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = '0001_accounts'")
    with pytest.raises(MigrationError, match="0001_accounts"):
        migrate(database_url)
