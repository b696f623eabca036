"""The request hooks: each request timed, authorized, and logged in one access line."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from mlops.kernel.config import Settings
from mlops.kernel.web.auth import authorize


def register_request_hooks(app: Flask, service: str, settings: Settings) -> None:
    access = logging.getLogger(f"mlops.{service}.access")

    @app.before_request
    def start_and_authorize():
        g.started = time.perf_counter()
        authorize(settings)

    @app.after_request
    def log_request(response):
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access.info("%s %s %s %.1fms", request.method, request.full_path.rstrip("?"), response.status_code, elapsed)
        return response
