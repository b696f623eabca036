"""Flask plumbing shared by the four services, one module per concern:

operations (ApiBlueprint and its `operation` decorator) · parsing (request models read and
validated into one readable 400) · state (ServiceState, each service's typed resources, accessors)
· factory (create_service_app) · endpoints (/health, /ready, /metrics, /openapi.json, /docs) ·
openapi (the OpenAPI document) · docs_page (the /docs page) · error_handlers (every error as
{"error", "message"}) · auth (the bearer token) · access_log (one line per request)."""
