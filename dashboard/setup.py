"""What the dashboard settles at start-up so that a host needs only the three lines."""

import importlib.util

from django.conf import settings


def asgi_application_guess() -> str | None:
    """`<project>.asgi.application` beside the project's WSGI_APPLICATION, if that
    module exists (what `startproject` lays out)."""
    wsgi = getattr(settings, "WSGI_APPLICATION", None)
    if not isinstance(wsgi, str) or not wsgi.endswith(".wsgi.application"):
        return None
    module = wsgi.removesuffix(".application").removesuffix(".wsgi") + ".asgi"
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return f"{module}.application" if found else None


def default_asgi_application() -> None:
    """daphne's `runserver` serves ASGI_APPLICATION; a project made by `startproject`
    does not set it, but has an asgi.py beside its wsgi.py: that is the one."""
    if not hasattr(settings, "ASGI_APPLICATION") and (guess := asgi_application_guess()):
        settings.ASGI_APPLICATION = guess
