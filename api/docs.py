"""`/openapi.json` and `/docs` for both apps, with the Swagger UI served from the swagger-ui-bundle wheel:
no page of ours makes a browser fetch anything from a CDN."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.params import Depends
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


def _asset_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def add_docs_routes(app: FastAPI, *, title: str, dependencies: Sequence[Depends]) -> None:
    """Docs behind the same auth as every other endpoint; the page embeds the schema, so the browser never
    fetches it without the header."""
    deps = list(dependencies)

    @app.get("/openapi.json", include_in_schema=False, dependencies=deps)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=deps)
    async def docs() -> HTMLResponse:
        spec: dict[str, Any] = app.openapi()
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - docs",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
            swagger_ui_parameters={"spec": spec, "persistAuthorization": True},
        )

    @app.get("/docs/assets/{name}", include_in_schema=False, dependencies=deps)
    async def docs_asset(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(_asset_dir() / name)
