"""Subprocess: migrate the throwaway database and log a staff user in.

Run as `python -m bench.prepare OUT.json` with DATABASE_URL pointing at the bench
database. Writes {"session": <session key of a staff user>} to OUT.json.
"""

import json
import sys
from pathlib import Path

import django


def staff_session() -> str:
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.create_superuser("bench", password="bench-pass-12345")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return str(session.session_key)


def main(out: Path) -> None:
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from dashboard.live.handoff import handoff

    for alias in connections:  # the history may have a database of its own
        call_command("migrate", database=alias, interactive=False, verbosity=0)
    out.write_text(json.dumps({"session": staff_session()}))
    handoff.reset()  # setup's own events are nobody's business


if __name__ == "__main__":
    main(Path(sys.argv[1]))
