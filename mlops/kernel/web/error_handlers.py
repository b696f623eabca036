"""Every error a service answers, as {"error": ..., "message": ...} with its status."""

from __future__ import annotations

import logging

from flask import Flask, request
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from mlops.kernel.errors import ApiError
from mlops.kernel.outages import DATASET_DB, outage
from mlops.kernel.web.parsing import describe_validation_error

log = logging.getLogger("mlops")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error.to_json(), error.status

    @app.errorhandler(RequestEntityTooLarge)
    def body_too_large(error: RequestEntityTooLarge):
        limit = app.config["MAX_CONTENT_LENGTH"]
        return {
            "error": "Request Entity Too Large",
            "message": f"The request body is larger than the limit of {limit} bytes (MLOPS_MAX_BODY_BYTES)",
        }, 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # Keep the headers the status calls for (Allow on a 405), not the HTML page's Content-Type.
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return {"error": error.name, "message": error.description}, error.code, headers

    @app.errorhandler(ValidationError)
    def validation_error(error: ValidationError):
        return {"error": "Invalid request", "message": describe_validation_error(error)}, 400

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def database_unavailable(error: Exception):
        if _lost_to_a_concurrent_change(error):
            log.warning("transaction lost to a concurrent one: %s", error)
            return {
                "error": "Conflict",
                "message": "The request collided with a concurrent change of the same data; send it again",
            }, 409
        outage(DATASET_DB).failed(error)
        return {
            "error": "Service Unavailable",
            "message": "The dataset database is unavailable right now; retry shortly",
        }, 503

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return {"error": "Internal Server Error", "message": "An unexpected error occurred; see the service log"}, 500


def _lost_to_a_concurrent_change(error: Exception) -> bool:
    """Whether PostgreSQL rolled the transaction back for another one (deadlock, serialization
    failure: SQLSTATE class 40); the database itself is fine and the request can be sent again."""
    sqlstate = getattr(getattr(error, "orig", None), "sqlstate", None) or ""
    return sqlstate.startswith("40")
