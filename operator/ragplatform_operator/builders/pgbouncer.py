"""The PgBouncer pool in front of PostgreSQL: ConfigMap, Deployment and Service.

The services connect to `<platform>-pgbouncer:5432` in transaction pooling mode. The password
never passes through the operator: the ConfigMap holds only `pgbouncer.ini`, and an init
container writes `userlist.txt` into an in-memory volume from the user's own password Secret
(`postgres.passwordSecretRef`). PgBouncer uses that plain-text entry both to check the services'
SCRAM logins and to log in to PostgreSQL (SCRAM or md5, whichever the server asks for).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ragplatform_operator.builders.env import PGBOUNCER_PORT
from ragplatform_operator.builders.metadata import Manifest, Owner, labels, object_meta, selector_labels
from ragplatform_operator.builders.pod import (
    TMP_MOUNT,
    container_security_context,
    image_pull_secrets,
    merged_resources,
    pod_security_context,
    tmp_volume,
)
from ragplatform_operator.spec import PlatformSpec

COMPONENT = "pgbouncer"
# The `postgres` user of the (Alpine-based) PgBouncer image.
PGBOUNCER_UID = 70
CONFIG_DIR = "/etc/pgbouncer/config"
AUTH_DIR = "/etc/pgbouncer/auth"
DEFAULT_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}

# Doubles any '"' in the password, as userlist.txt quoting requires.
_WRITE_USERLIST = (
    "set -eu\n"
    'escaped=$(printf \'%s\' "$PGBOUNCER_PASSWORD" | sed \'s/"/""/g\')\n'
    f'printf \'"%s" "%s"\\n\' "$PGBOUNCER_USER" "$escaped" > {AUTH_DIR}/userlist.txt\n'
)


def render_pgbouncer_ini(spec: PlatformSpec) -> str:
    """The text of pgbouncer.ini for this platform (no secrets in it)."""
    pg, pool = spec.postgres, spec.pgbouncer
    lines = [
        "[databases]",
        f"{pg.database} = host={pg.host} port={pg.port} dbname={pg.database}",
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {PGBOUNCER_PORT}",
        # No Unix socket and no pid file: the root filesystem is read-only.
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {AUTH_DIR}/userlist.txt",
        f"pool_mode = {pool.pool_mode}",
        f"default_pool_size = {pool.default_pool_size}",
        f"max_client_conn = {pool.max_client_connections}",
        f"server_tls_sslmode = {pg.ssl_mode}",
        # Common drivers (JDBC, some psql versions) send this one; PgBouncer would refuse the
        # connection. Others stay refused rather than silently dropped.
        "ignore_startup_parameters = extra_float_digits",
        # After a PostgreSQL restart, retry the server login after 1 s (default 15 s): callers
        # get UNAVAILABLE for seconds, not for a quarter of a minute.
        "server_login_retry = 1",
        "log_connections = 0",
        "log_disconnections = 0",
        "",
    ]
    return "\n".join(lines)


def build_pgbouncer_config_map(owner: Owner, spec: PlatformSpec) -> Manifest:
    """The ConfigMap `<platform>-pgbouncer` holding pgbouncer.ini."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(owner, COMPONENT),
        "data": {"pgbouncer.ini": render_pgbouncer_ini(spec)},
    }


def _tcp_probe(period: int, failures: int) -> dict[str, Any]:
    return {"tcpSocket": {"port": "postgres"}, "periodSeconds": period, "failureThreshold": failures}


def build_pgbouncer_deployment(owner: Owner, spec: PlatformSpec) -> Manifest:
    """The Deployment `<platform>-pgbouncer`; a config change rolls it (checksum annotation)."""
    pool = spec.pgbouncer
    checksum = hashlib.sha256(render_pgbouncer_ini(spec).encode()).hexdigest()
    password = spec.postgres.password_secret_ref
    init_container = {
        "name": "write-userlist",
        "image": pool.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["/bin/sh", "-c", _WRITE_USERLIST],
        "env": [
            {"name": "PGBOUNCER_USER", "value": spec.postgres.user},
            {
                "name": "PGBOUNCER_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": password.name, "key": password.key}},
            },
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "auth", "mountPath": AUTH_DIR}],
    }
    container = {
        "name": "pgbouncer",
        "image": pool.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["pgbouncer", f"{CONFIG_DIR}/pgbouncer.ini"],
        "ports": [{"name": "postgres", "containerPort": PGBOUNCER_PORT, "protocol": "TCP"}],
        "resources": merged_resources(DEFAULT_RESOURCES, pool.resources),
        "readinessProbe": _tcp_probe(period=5, failures=2),
        "livenessProbe": _tcp_probe(period=10, failures=3),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True},
            TMP_MOUNT,
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": owner.child_name(COMPONENT),
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(PGBOUNCER_UID),
        # Since PgBouncer 1.23 SIGTERM waits for running transactions; give them time to end.
        "terminationGracePeriodSeconds": 30,
        "initContainers": [init_container],
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": owner.child_name(COMPONENT)}},
            {"name": "auth", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            tmp_volume("64Mi"),
        ],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = image_pull_secrets(spec.image_pull_secrets)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(owner, COMPONENT),
        "spec": {
            "replicas": pool.replicas,
            "selector": {"matchLabels": selector_labels(owner, COMPONENT)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": labels(owner, COMPONENT),
                    "annotations": {"ragplatform.io/config-checksum": checksum},
                },
                "spec": pod_spec,
            },
        },
    }


def build_pgbouncer_service(owner: Owner) -> Manifest:
    """The ClusterIP Service `<platform>-pgbouncer` on port 5432 (what RAG_STORE_URL points at)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(owner, COMPONENT),
        "spec": {
            "selector": selector_labels(owner, COMPONENT),
            "ports": [{"name": "postgres", "port": PGBOUNCER_PORT, "targetPort": "postgres", "protocol": "TCP"}],
        },
    }
