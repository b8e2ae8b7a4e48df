"""The production kit's files hold together: compose.yaml's services, health checks,
dependencies and volumes; the Dockerfile; the systemd units; and the README, whose
commands are the ones compose and systemd run. (The topology itself runs natively in
tests/integration/test_production.py: this machine has no container runtime.)"""

from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from campaigns.settings import _known_keys
from tests.conftest import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = ("migrate", "web", "worker", "beat")
UNITS = {
    "migrate": "meridian-migrate.service",
    "web": "meridian-web.service",
    "worker": "meridian-worker@.service",
    "beat": "meridian-beat.service",
}


def readme_production_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("  #", 1)[0].strip() for block in blocks for line in block.splitlines()]


def exec_start(unit: str) -> list[str]:
    text = (ROOT / "deploy/systemd" / unit).read_text()
    [line] = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    args = shlex.split(line.removeprefix("ExecStart="))
    args[0] = Path(args[0]).name  # /opt/meridian/venv/bin/celery -> celery
    return args


def test_compose_has_every_service_of_the_topology() -> None:
    assert set(SERVICES) == {"db", "redis", "migrate", "web", "worker", "beat", "flower"}
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    assert SERVICES["beat"]["deploy"]["replicas"] in (1, 2)
    for name in APP_SERVICES:
        assert SERVICES[name]["image"] == "meridian:latest"
        assert SERVICES[name]["build"] == "."
        assert SERVICES[name]["environment"]["MERIDIAN_ENV"] == "production"
    assert SERVICES["migrate"]["restart"] == "no"


def test_redis_keeps_everything_and_postgres_and_redis_keep_their_data_in_volumes() -> None:
    command = SERVICES["redis"]["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redisdata:/data" in SERVICES["redis"]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["db"]["volumes"]
    assert set(COMPOSE["volumes"]) == {"pgdata", "redisdata"}


@pytest.mark.parametrize("name", ["db", "redis", "web", "worker"])
def test_the_long_running_services_have_a_healthcheck(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert {"interval", "timeout", "retries"} <= set(check)


def test_the_web_healthcheck_asks_healthz() -> None:
    assert "/healthz" in " ".join(SERVICES["web"]["healthcheck"]["test"])


def test_migrate_runs_after_the_database_and_everything_else_after_migrate() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert SERVICES[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }


def test_every_meridian_key_in_compose_and_the_env_example_is_a_known_setting() -> None:
    known = _known_keys()
    keys = set(SERVICES["web"]["environment"])
    for line in (ROOT / "deploy/meridian.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            keys.add(line.split("=", 1)[0])
    assert keys <= known, sorted(keys - known)


def test_the_readme_shows_the_commands_compose_and_systemd_run() -> None:
    shown = readme_production_commands()
    for name in APP_SERVICES:
        command = " ".join(SERVICES[name]["command"])
        assert command in shown, f"{name}: README does not show {command!r}"
        # The systemd unit runs the same command; the web binds to loopback behind a
        # proxy, and each templated worker names itself.
        unit = exec_start(UNITS[name])
        expected = list(SERVICES[name]["command"])
        if "--bind" in expected:
            expected[expected.index("--bind") + 1] = "127.0.0.1:8000"
        assert unit[: len(expected)] == expected, UNITS[name]


def test_the_dockerfile_is_slim_non_root_and_installs_no_dev_dependencies() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert 'pip install ".[production]"' in text
    assert "[dev" not in text
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd and json.loads(cmd.group(1)) == SERVICES["web"]["command"]
    for copied in ("campaigns", "tasks", "templates"):
        assert re.search(rf"^COPY {copied} ", text, re.M)
    extras = ast.literal_eval(
        re.search(r"^production = (\[.*\])$", (ROOT / "pyproject.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
    )
    assert any(e.startswith("gunicorn") for e in extras)


def test_the_wsgi_module_defines_the_app_gunicorn_is_pointed_at() -> None:
    web = SERVICES["web"]["command"]
    target = next(arg for arg in web[1:] if ":" in arg and not arg.startswith(("python:", "-")))
    module, _, attr = target.partition(":")
    path = ROOT / (module.replace(".", "/") + ".py")
    # Its settings module, named by -c python:MODULE, is there too.
    config = web[web.index("-c") + 1].removeprefix("python:")
    assert (ROOT / (config.replace(".", "/") + ".py")).is_file()
    tree = ast.parse(path.read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert attr in assigned
