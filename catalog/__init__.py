"""The SQL catalog: tables, migrations and sessions (SQLite embedded, PostgreSQL at scale)."""
