"""The operator dashboard (port 18002): one page of our own HTML, CSS and JS that watches the engine live over the
operator API's WebSocket and steers it with the operator API's own controls.

The page's reads and controls are the operator API's routes served again on this port (same origin: no CORS, and
the session cookie with its CSRF header is the credential), plus `GET /dashboard/overview` for the record behind
the panels. The WebSocket stays the API's (`/ws` on `TRADEOS_API_PORT`), which accepts this page's session cookie
because its Origin is the dashboard's (api/ws.py). With `TRADEOS_TOOL_TOKEN` set nothing but the sign-in form is
served before the token is given (api/browser_session.py); without it everything is open, like the APIs.
"""

from api.dashboard.app import DASHBOARD_TITLE, create_app

__all__ = ["DASHBOARD_TITLE", "create_app"]
