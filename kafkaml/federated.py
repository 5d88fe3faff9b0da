"""Federated worker credentials: their form, and the signing key both ends derive from one.

The backend issues a worker one credential, `kmlw.<worker id>.<secret>`, and keeps only its
SHA-256 (to authenticate the worker's API calls) and the signing key derived from it (for the
coordinator job of a deployment the worker joined). The worker signs its updates with the same
derived key, so the coordinator can verify them without ever holding the credential, and the
signing key alone does not let anyone call the API as the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "kmlw"
_SIGNING_CONTEXT = b"kafkaml federated signing key v1"


class CredentialError(ValueError):
    """Text that is not a federated worker credential."""


def credential_new() -> tuple[str, str]:
    """A fresh (worker id, credential) pair; the id is public, the credential secret."""
    worker_id = f"w{secrets.token_hex(6)}"
    return worker_id, f"{PREFIX}.{worker_id}.{secrets.token_urlsafe(32)}"


def credential_worker_id(credential: str) -> str:
    """The worker id a credential names; raises CredentialError for anything else."""
    prefix, sep, rest = credential.partition(".")
    worker_id, sep2, secret = rest.partition(".")
    if prefix != PREFIX or not sep or not sep2 or not worker_id or not secret:
        raise CredentialError("not a federated worker credential (kmlw.<id>.<secret>)")
    return worker_id


def credential_hash(credential: str) -> str:
    """What the backend stores to recognise the credential (hex SHA-256; the secret is random)."""
    return hashlib.sha256(credential.encode()).hexdigest()


def signing_key(credential: str) -> bytes:
    """The HMAC key of the worker's exchange messages, derived one-way from its credential."""
    return hmac.new(credential.encode(), _SIGNING_CONTEXT, hashlib.sha256).digest()
