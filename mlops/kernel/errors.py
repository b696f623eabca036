"""One error vocabulary for every service: each error knows its status and answers
{"error": ..., "message": ...}."""

from __future__ import annotations

from pydantic import BaseModel


class ApiError(Exception):
    """An error the client is told about: a short `error` title, a `message` saying what to do."""

    status = 500
    error = "Internal Server Error"

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if error is not None:
            self.error = error
        if status is not None:
            self.status = status

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


class BadRequest(ApiError):
    status = 400
    error = "Bad Request"


class Unauthorized(ApiError):
    status = 401
    error = "Unauthorized"


class NotFound(ApiError):
    status = 404
    error = "Not Found"


class Conflict(ApiError):
    """The request is valid but a step must happen first (load a set, set or train a model)."""

    status = 409
    error = "Conflict"


class UnsupportedMediaType(ApiError):
    status = 415
    error = "Unsupported Media Type"


class UpstreamError(ApiError):
    """Another service answered something we cannot use."""

    status = 502
    error = "Bad Gateway"


class Unavailable(ApiError):
    """A dependency (database, another service) does not answer right now; retrying may work."""

    status = 503
    error = "Service Unavailable"


class ErrorAnswer(BaseModel):
    """The body of every error answer (the OpenAPI document's `Error`)."""

    error: str
    message: str
