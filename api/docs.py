"""`/openapi.json` and `/docs` for both apps: Swagger UI 5 (it reads OpenAPI 3.1, as FastAPI writes it) served
from the `fastapi-swagger` wheel, so no page of ours makes a browser fetch anything from another host.

The docs sit behind the same auth as every other endpoint. A browser signs in once (`api.browser_session`); the
page then hands Swagger UI the session's CSRF value, which it adds to every "Try it out" request.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.params import Depends
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from api.browser_session import CSRF_HEADER, csrf_for

_SWAGGER_ASSETS: Final = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
_STARTER: Final = "tradeos-docs.js"
_OUR_STYLE: Final = "tradeos-docs.css"
# Our own start-up script, served as a file so the page needs no inline script (see `DOCS_PAGE_POLICY`).
_STARTER_JS: Final = """"use strict";
(() => {
  const config = JSON.parse(document.getElementById("tradeos-docs-config").textContent);
  window.ui = SwaggerUIBundle({
    spec: config.spec,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    requestInterceptor: (request) => {
      if (config.csrf) {
        request.headers[config.csrfHeader] = config.csrf;
      }
      return request;
    },
  });
})();
"""
# Scripts and styles from our own server only; Swagger UI sets inline styles and draws icons as data: images.
DOCS_PAGE_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_SIGN_OUT_STYLE: Final = (
    "#tradeos-signout{position:absolute;top:.6rem;right:1rem;margin:0}"
    "#tradeos-signout button{font:14px sans-serif;padding:.3rem .8rem;cursor:pointer}"
)


def _swagger_asset(name: str) -> Traversable:
    return files("fastapi_swagger.resources") / name


def _script_json(value: object) -> str:
    """JSON safe inside a `<script>` element: no `</script>` or `<!--` can end or bend it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docs_page(*, title: str, spec: dict[str, Any], csrf: str | None) -> HTMLResponse:
    """The Swagger UI page with the schema embedded (one request fewer, and nothing fetched without auth)."""
    config = {"spec": spec, "csrf": csrf, "csrfHeader": CSRF_HEADER}
    sign_out = (
        '<form id="tradeos-signout" method="post" action="/session/logout"><button type="submit">Sign out'
        "</button></form>"
        if csrf
        else ""
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)} - docs</title>
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="/docs/assets/{_OUR_STYLE}">
</head><body>
{sign_out}
<div id="swagger-ui"></div>
<script id="tradeos-docs-config" type="application/json">{_script_json(config)}</script>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/{_STARTER}"></script>
</body></html>
"""
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": DOCS_PAGE_POLICY,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_docs_routes(app: FastAPI, *, title: str, dependencies: Sequence[Depends]) -> None:
    """`/openapi.json`, `/docs` and its assets, behind `dependencies` (the app's auth)."""
    deps = list(dependencies)

    @app.get("/openapi.json", include_in_schema=False, dependencies=deps)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=deps)
    async def docs(request: Request) -> HTMLResponse:
        return docs_page(title=title, spec=app.openapi(), csrf=csrf_for(request))

    @app.get("/docs/assets/{name}", include_in_schema=False, dependencies=deps)
    async def docs_asset(name: str) -> Response:
        if name == _STARTER:
            return Response(_STARTER_JS, media_type="text/javascript")
        if name == _OUR_STYLE:
            return Response(_SIGN_OUT_STYLE, media_type="text/css")
        if name not in _SWAGGER_ASSETS:
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(str(_swagger_asset(name)))
