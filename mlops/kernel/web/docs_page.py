"""The /docs page: Swagger UI on the service's /openapi.json, its files served by the service
itself (from the flask-swagger-ui package), so that the page works offline and loads nothing from
elsewhere."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from pathlib import Path

# Swagger UI's files the page loads, and what they are
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
# Everything from this service, nothing from anywhere else. Swagger UI's bundle builds its
# renderers at run time (new Function) and styles elements inline; "Try it out" calls this service.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:"
)


@cache
def assets_dir() -> Path:
    """Where the installed flask-swagger-ui keeps Swagger UI's distribution."""
    return Path(str(resources.files("flask_swagger_ui") / "dist"))


def docs_page(title: str, openapi_url: str, assets_url: str) -> str:
    """The HTML of the docs page: Swagger UI showing the document at openapi_url."""
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "validatorUrl": None,  # Swagger UI would send the document to validator.swagger.io
        "defaultModelsExpandDepth": 1,
        "tryItOutEnabled": False,
    }
    name = html.escape(title)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name} API</title>
<link rel="stylesheet" href="{assets_url}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets_url}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets_url}/swagger-ui-bundle.js"></script>
<script src="{assets_url}/swagger-ui-standalone-preset.js"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle(Object.assign({json.dumps(config)}, {{
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "BaseLayout"
  }}));
}};
</script>
</body>
</html>
"""
