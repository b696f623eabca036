"""HTTP client for service-to-service calls: timeouts, a retry on refused connections, errors
that name the peer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from mlops.kernel.errors import Unavailable, UpstreamError


@dataclass(frozen=True)
class ServiceReply:
    status: int
    body: Any


def call_service(
    service_name: str,
    method: str,
    url: str,
    *,
    json: Any = None,
    timeout: float = 30.0,
    token: str = "",
    connect_retries: int = 2,
) -> ServiceReply:
    """Send one JSON request to another service and return its status and JSON body.

    A refused connection is retried briefly (the peer may be restarting); a peer that stays
    unreachable or times out is `Unavailable` (503), one that answers non-JSON is `UpstreamError`.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(connect_retries + 1):
        try:
            response = requests.request(method, url, json=json, headers=headers, timeout=(min(5.0, timeout), timeout))
            break
        except requests.ConnectionError as error:
            if attempt == connect_retries or isinstance(error, requests.ReadTimeout):
                raise Unavailable(
                    f"The {service_name} at {url} is unreachable ({type(error).__name__}); check that it is running",
                    error=f"{service_name} unavailable",
                ) from error
            time.sleep(0.2 * (attempt + 1))
        except requests.Timeout as error:
            raise Unavailable(
                f"The {service_name} at {url} did not answer within {timeout:g} s",
                error=f"{service_name} unavailable",
            ) from error
    try:
        body = response.json()
    except ValueError as error:
        raise UpstreamError(
            f"The {service_name} at {url} answered {response.status_code} without a JSON body",
            error=f"{service_name} error",
        ) from error
    return ServiceReply(response.status_code, body)
