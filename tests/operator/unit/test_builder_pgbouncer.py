"""PgBouncer: config in a ConfigMap, the password only from the user's Secret, services pointed at it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from typing import Any

import pytest

from tests.operator.unit.conftest import find, render


def _ini(children: list[dict[str, Any]], name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(find(children, "ConfigMap", name)["data"]["pgbouncer.ini"])
    return parser


def test_config_points_at_postgres_with_the_pool_settings(production: dict[str, Any]) -> None:
    ini = _ini(render(production, name="rag-prod"), "rag-prod-pgbouncer")

    assert ini["databases"]["ragplatform"] == (
        "host=ragplatform-db.cluster-abc.eu-west-1.rds.amazonaws.com port=5432 dbname=ragplatform"
    )
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["default_pool_size"] == "40"
    assert bouncer["max_client_conn"] == "5000"
    assert bouncer["server_tls_sslmode"] == "require"
    assert bouncer["listen_port"] == "5432"


def test_no_password_in_any_rendered_object(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    assert not [c for c in children if c["kind"] == "Secret"]
    deployment = find(children, "Deployment", "rag-prod-pgbouncer")
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    password = next(e for e in init["env"] if e["name"] == "PGBOUNCER_PASSWORD")
    assert password["valueFrom"] == {"secretKeyRef": {"name": "ragplatform-postgres", "key": "password"}}


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_init_script_writes_a_userlist_pgbouncer_accepts(minimal: dict[str, Any], tmp_path: Any) -> None:
    # Runs the real init script with a hostile password (quotes, spaces, $) against a temp dir.
    init = find(render(minimal), "Deployment", "demo-pgbouncer")["spec"]["template"]["spec"]["initContainers"][0]
    script = init["command"][2].replace("/etc/pgbouncer/auth", str(tmp_path))

    subprocess.run(
        ["sh", "-c", script],
        check=True,
        env={"PATH": "/usr/bin:/bin", "PGBOUNCER_USER": "ragplatform", "PGBOUNCER_PASSWORD": 'p"a $w'},
    )

    assert (tmp_path / "userlist.txt").read_text() == '"ragplatform" "p""a $w"\n'


def test_config_change_rolls_the_pods(minimal: dict[str, Any]) -> None:
    before = find(render(minimal), "Deployment", "demo-pgbouncer")
    minimal["pgbouncer"]["defaultPoolSize"] = 50
    after = find(render(minimal), "Deployment", "demo-pgbouncer")

    key = "ragplatform.io/config-checksum"
    assert (
        before["spec"]["template"]["metadata"]["annotations"][key]
        != (after["spec"]["template"]["metadata"]["annotations"][key])
    )


def test_pool_runs_the_configured_replicas_behind_a_service(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    assert find(children, "Deployment", "rag-prod-pgbouncer")["spec"]["replicas"] == 2
    service = find(children, "Service", "rag-prod-pgbouncer")
    assert service["spec"]["ports"] == [{"name": "postgres", "port": 5432, "targetPort": "postgres", "protocol": "TCP"}]


def test_services_connect_through_pgbouncer_never_postgres(production: dict[str, Any]) -> None:
    children = render(production, name="rag-prod")

    for deployment in (c for c in children if c["kind"] == "Deployment" and "pgbouncer" not in c["metadata"]["name"]):
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        if "RAG_STORE_URL" in env:
            assert env["RAG_STORE_URL"] == "postgresql://ragplatform@rag-prod-pgbouncer.rag-test.svc:5432/ragplatform"
        assert not any("rds.amazonaws.com" in str(v) for v in env.values())
