"""The generated internal token: a Secret owned by the platform, referenced by every tier."""

from __future__ import annotations

from typing import Any

from ragplatform_operator.builders import build_children
from ragplatform_operator.builders.env import build_tier_env
from ragplatform_operator.builders.internal_token import (
    TOKEN_FINGERPRINT_ANNOTATION,
    build_internal_token_secret,
    internal_token_ref,
    new_internal_token,
    token_fingerprint,
)
from ragplatform_operator.builders.metadata import Owner
from ragplatform_operator.spec import TIER_NAMES, SecretKeyRef, parse_spec

OWNER = Owner(name="demo", namespace="rag", uid="uid-1")


def test_every_tier_reads_the_generated_token_when_the_spec_names_none(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    assert spec.internal_token_secret_ref is None
    for tier in TIER_NAMES:
        env = {e["name"]: e for e in build_tier_env(OWNER, spec, tier)}
        assert env["RAG_INTERNAL_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "demo-internal-token", "key": "token"}


def test_the_spec_secret_wins_when_given(minimal: dict[str, Any]) -> None:
    spec = parse_spec({**minimal, "internalTokenSecretRef": {"name": "mine", "key": "t"}})
    assert internal_token_ref(OWNER, spec) == SecretKeyRef(name="mine", key="t")


def test_the_secret_holds_the_token_and_belongs_to_the_platform() -> None:
    secret = build_internal_token_secret(OWNER, "abc")
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "demo-internal-token"
    assert secret["metadata"]["namespace"] == "rag"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert secret["stringData"] == {"token": "abc"}


def test_generated_tokens_are_long_and_different() -> None:
    first, second = new_internal_token(), new_internal_token()
    assert first != second
    assert len(first) >= 40


def test_every_tier_pod_template_carries_the_token_fingerprint_not_the_token(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    fingerprint = token_fingerprint("s3cr3t-token")
    assert fingerprint != token_fingerprint("another-token")
    children = build_children("demo", "rag", "uid-1", spec, None, token_fingerprint=fingerprint)
    deployments = {c["metadata"]["name"]: c for c in children if c["kind"] == "Deployment"}
    for tier in TIER_NAMES:
        annotations = deployments[f"demo-{tier}"]["spec"]["template"]["metadata"]["annotations"]
        assert annotations[TOKEN_FINGERPRINT_ANNOTATION] == fingerprint
    assert "s3cr3t-token" not in str(children)
    # PgBouncer does not read the token: a new one does not restart it.
    pgbouncer = deployments["demo-pgbouncer"]["spec"]["template"]["metadata"].get("annotations") or {}
    assert TOKEN_FINGERPRINT_ANNOTATION not in pgbouncer
