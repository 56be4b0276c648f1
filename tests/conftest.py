"""Shared test configuration."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator

import pytest

#: The database the PostgreSQL tests use (each test in a schema of its own, dropped after).
POSTGRES_URL = os.environ.get(
    "ANYSEND_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of tests that need a service."""
    config.addinivalue_line(
        "markers",
        "postgres: needs PostgreSQL (ANYSEND_TEST_POSTGRES_URL, default 127.0.0.1:5432/test);"
        " skipped when it does not answer",
    )


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio (the only event loop anysend supports)."""
    return "asyncio"


@functools.lru_cache(maxsize=1)
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here (asked once per session), or ``None``."""
    try:
        import psycopg
    except ImportError:
        return 'psycopg is not installed (pip install "anysend[postgres]")'
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return None
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL does not answer at {POSTGRES_URL}: {reason}"


def drop_schema(schema: str) -> None:
    """Drop a test's schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=2) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL with a fresh schema (dropped after the test); skips without one."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"anysend_test_{uuid.uuid4().hex[:12]}"
    yield f"{POSTGRES_URL}?schema={schema}"
    drop_schema(schema)


@pytest.hookimpl(specname="pytest_configure")
def pytest_configure_queue_services(config: pytest.Config) -> None:
    """Register the markers of the Redis, Celery and RabbitMQ tests (see tests/test_celery.py)."""
    for line in (
        "redis: needs Redis on 127.0.0.1:6379 (ANYSEND_TEST_REDIS_URL); skipped when it does not"
        " answer",
        "celery: starts real Celery worker processes (needs celery and Redis)",
        "rabbitmq: needs RabbitMQ on 127.0.0.1:5672 (ANYSEND_TEST_AMQP_URL); skipped when it"
        " does not answer",
    ):
        config.addinivalue_line("markers", line)
