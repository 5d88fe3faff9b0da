"""The web UI: the built single-page app (frontend/dist) at `/`, its routes answered by index.html.

whitenoise serves the build's files (`/assets/...`, long-cached: their names carry a content
hash); every other path outside `/api`, `/admin`, `/static` and `/metrics` gets index.html, so a
reload or a shared link of any page of the app works.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

# The paths the backend answers itself; the app's routes are everything else.
SPA_PATH = r"^(?!api/|api$|admin/|admin$|static/|metrics$).*$"

NOT_BUILT = """<!doctype html><html lang="en"><head><title>kafkaml</title></head><body>
<h1>The kafkaml web UI is not built</h1>
<p>Run <code>make run</code> (it builds the UI),
or <code>cd frontend && npm ci && npm run build</code>.
The API answers at <a href="/api/docs/">/api/docs/</a>.</p></body></html>"""


@require_safe
@never_cache
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """index.html of the build (a page saying what to run when there is no build)."""
    page = settings.KAFKAML.frontend_dir / "index.html"
    if not page.is_file():
        return HttpResponse(NOT_BUILT)
    return HttpResponse(page.read_bytes(), content_type="text/html; charset=utf-8")
