"""The internal token when the spec names none: a Secret the operator generates once per
RagPlatform (owned by it, so it goes with it), which every tier reads as RAG_INTERNAL_TOKEN.

Internal services refuse calls without the token, so a platform is never left with internal
ports that answer anyone. The Secret is created only when missing and never re-rendered: a new
value on every reconcile would restart every pod and break calls in flight.

A deleted Secret cannot be restored with its old value (running pods read it into their
environment at start; the API keeps no copy), so the operator generates a new one, and every
tier's pod template carries `TOKEN_FINGERPRINT_ANNOTATION` (a hash of the value in force, never
the value): a new or edited token changes it, which rolls every tier onto the same token.
"""

from __future__ import annotations

import hashlib
import secrets

from ragplatform_operator.builders.metadata import Manifest, Owner, object_meta
from ragplatform_operator.spec import PlatformSpec, SecretKeyRef

COMPONENT = "internal-token"
TOKEN_KEY = "token"
TOKEN_FINGERPRINT_ANNOTATION = "ragplatform.io/internal-token-fingerprint"


def internal_token_ref(owner: Owner, spec: PlatformSpec) -> SecretKeyRef:
    """Where every tier reads its internal token: the spec's Secret, else the generated one."""
    if spec.internal_token_secret_ref is not None:
        return spec.internal_token_secret_ref
    return SecretKeyRef(name=owner.child_name(COMPONENT), key=TOKEN_KEY)


def new_internal_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def build_internal_token_secret(owner: Owner, token: str) -> Manifest:
    """The generated Secret holding `token`, owned by the RagPlatform."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(owner, COMPONENT),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def token_fingerprint(token: str) -> str:
    """A short hash identifying `token` in pod templates; reveals nothing usable about it."""
    return hashlib.sha256(f"ragplatform-internal-token:{token}".encode()).hexdigest()[:16]
