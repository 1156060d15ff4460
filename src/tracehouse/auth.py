"""API keys name tenants: the one check that both the receiver (OTLP over gRPC and HTTP) and the
HTTP API and web page make of who is sending or reading.

Core: it imports nothing of tracehouse, so every side that checks a key shares it without
importing another side.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass


class Unauthenticated(Exception):
    """No API key, or one that names no tenant."""


def parse_api_keys(spec: str) -> dict[str, str]:
    """``KEY:TENANT[,KEY:TENANT...]`` to a key -> tenant map."""
    keys: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, tenant = item.partition(":")
        if not sep or not key or not tenant:
            raise ValueError(f"API key entry {item.split(':')[0][:4]}... must be KEY:TENANT")
        keys[key] = tenant
    return keys


@dataclass(frozen=True)
class Auth:
    """API keys name tenants. With no keys the server asks for none."""

    keys: dict[str, str]

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def tenant(self, authorization: str | None = None, api_key: str | None = None) -> str:
        """The tenant of the offered key; "" when no keys are configured (the data may then name
        its tenant, else it goes to the default one)."""
        if not self.keys:
            return ""
        offered = api_key or ""
        if authorization and authorization[:7].lower() == "bearer ":
            offered = authorization[7:].strip()
        for key, tenant in self.keys.items():
            if offered and hmac.compare_digest(key.encode(), offered.encode()):
                return tenant
        raise Unauthenticated("a valid API key is required (Authorization: Bearer KEY, or x-api-key: KEY)")
