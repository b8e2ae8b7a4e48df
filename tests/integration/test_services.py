"""The real services other integration tests and benchmarks stand on."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest
import redis

from tests.support.services import PostgresServer, RedisServer, free_port, require_binary

pytestmark = pytest.mark.integration


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def test_free_port_returns_a_port_that_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 0 < port < 65536


def test_redis_server_answers_ping_on_its_url(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() is True
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_redis_server_is_configured_for_no_eviction_and_an_append_only_file(
    redis_server: RedisServer,
) -> None:
    config = redis.Redis.from_url(redis_server.url, decode_responses=True).config_get("*")
    assert config["maxmemory-policy"] == "noeviction"
    assert config["appendonly"] == "yes"
    assert config["save"] == ""
    assert config["dir"] == str(redis_server.data_dir)


# The tests that kill or restart a server start their own: the session's is shared.


def test_redis_data_survives_a_restart_on_the_same_port() -> None:
    with RedisServer() as server:
        port = server.port
        redis.Redis.from_url(server.url).set("meridian:test:kept", "yes")

        server.restart()

        assert server.port == port
        assert redis.Redis.from_url(server.url).get("meridian:test:kept") == b"yes"


def test_redis_data_acknowledged_before_a_crash_survives_kill_and_restart() -> None:
    with RedisServer() as server:
        redis.Redis.from_url(server.url).set("meridian:test:kept", "yes")

        server.kill()
        assert _refuses_connections(server.port)
        server.restart()

        assert redis.Redis.from_url(server.url).get("meridian:test:kept") == b"yes"


def test_redis_server_stop_ends_the_server_and_removes_its_directory() -> None:
    server = RedisServer().start()
    directory = server.data_dir
    assert directory is not None and directory.is_dir()

    server.stop()

    assert _refuses_connections(server.port)
    assert not directory.exists()


def test_postgres_server_accepts_a_psycopg_connection_and_answers_a_query(
    postgres_server: PostgresServer,
) -> None:
    assert postgres_server.url.startswith("postgresql+psycopg://")
    with psycopg.connect(postgres_server.dsn) as conn:
        row = conn.execute("SELECT current_database(), 6 * 7").fetchone()
    assert row == ("meridian", 42)


def test_postgres_server_runs_with_fsync_off_from_its_own_directory(
    postgres_server: PostgresServer,
) -> None:
    with psycopg.connect(postgres_server.dsn) as conn:
        fsync = conn.execute("SHOW fsync").fetchone()
        data_dir = conn.execute("SHOW data_directory").fetchone()
    assert fsync == ("off",)
    assert postgres_server.data_dir is not None
    assert data_dir == (str(postgres_server.data_dir / "data"),)


def test_postgres_cluster_belongs_to_an_unprivileged_user_when_started_by_root(
    postgres_server: PostgresServer,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("started by an unprivileged user: no switch needed")
    assert postgres_server.data_dir is not None
    assert (postgres_server.data_dir / "data").stat().st_uid != 0


def test_postgres_create_database_returns_the_url_of_a_new_empty_database(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("meridian_extra")

    assert url.endswith(f":{postgres_server.port}/meridian_extra")
    with psycopg.connect(url.replace("+psycopg", "", 1)) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with psycopg.connect(postgres_server.dsn) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'").fetchone()
    assert tables == (0,)


def test_require_binary_returns_the_path_of_an_installed_binary() -> None:
    assert require_binary("redis-server").endswith("/redis-server")
    assert require_binary("initdb").endswith("/initdb")


def test_require_binary_skips_when_a_binary_is_missing_outside_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="meridian-no-such-binary"):
        require_binary("meridian-no-such-binary")


def test_require_binary_fails_when_a_binary_is_missing_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="meridian-no-such-binary"):
        require_binary("meridian-no-such-binary")
