"""The optional bearer token (MLOPS_API_TOKEN): required for writes, and for reads too with
MLOPS_PROTECT_READS; probes never need it."""

from __future__ import annotations

import hmac

from flask import request

from mlops.kernel.config import Settings
from mlops.kernel.errors import Unauthorized

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# liveness and readiness probes (the Open Inference Protocol's too) never need the token
OPEN_PATHS = frozenset({"/health", "/ready", "/v2/health/live", "/v2/health/ready"})


def authorize(settings: Settings) -> None:
    """Raise Unauthorized (401) unless the current request may pass without the token or carries it."""
    if not settings.api_token or request.path in OPEN_PATHS:
        return
    if request.method in READ_METHODS and not settings.protect_reads:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.api_token.encode()):
        raise Unauthorized("Send the header Authorization: Bearer <MLOPS_API_TOKEN>")
