"""The benches' own PostgreSQL databases, beside the one DATABASE_URL names (never inside it)."""

from __future__ import annotations

import os

import psycopg

SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def bench_url(name: str) -> str:
    """DATABASE_URL with its database swapped for the bench's."""
    return SERVER.rsplit("/", 1)[0] + f"/{name}"


def ensure_database(name: str) -> str:
    """Create the bench database if missing (keeping what a previous run seeded)."""
    with psycopg.connect(SERVER, autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if found.fetchone() is None:
            connection.execute(f"CREATE DATABASE {name}")
    return bench_url(name)


def recreate_database(name: str) -> str:
    """Start from an empty bench database; FORCE ends a stale run's leftover connections."""
    with psycopg.connect(SERVER, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    return bench_url(name)
