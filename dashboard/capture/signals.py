"""The one list of signals the dashboard watches, each with its family.

The family picks the row colour and the group in the counters; the order
here is the order of the counters on the page.
"""

import weakref
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal
from django.utils.module_loading import import_string

from dashboard.core.payload import receiver_info


@dataclass(frozen=True, slots=True)
class Watched:
    name: str
    path: str  # import path of the Signal object
    family: str

    @property
    def signal(self) -> Signal:
        return import_string(self.path)


FAMILIES = ("model", "request", "database", "settings", "auth", "custom")

WATCHED: tuple[Watched, ...] = (
    Watched("pre_save", "django.db.models.signals.pre_save", "model"),
    Watched("post_save", "django.db.models.signals.post_save", "model"),
    Watched("pre_delete", "django.db.models.signals.pre_delete", "model"),
    Watched("post_delete", "django.db.models.signals.post_delete", "model"),
    Watched("m2m_changed", "django.db.models.signals.m2m_changed", "model"),
    Watched("request_started", "django.core.signals.request_started", "request"),
    Watched("request_finished", "django.core.signals.request_finished", "request"),
    Watched("got_request_exception", "django.core.signals.got_request_exception", "request"),
    Watched("connection_created", "django.db.backends.signals.connection_created", "database"),
    Watched("setting_changed", "django.core.signals.setting_changed", "settings"),
    Watched("user_logged_in", "django.contrib.auth.signals.user_logged_in", "auth"),
    Watched("user_logged_out", "django.contrib.auth.signals.user_logged_out", "auth"),
    Watched("user_login_failed", "django.contrib.auth.signals.user_login_failed", "auth"),
    Watched("post_published", "blog.signals.post_published", "custom"),
    Watched("post_viewed", "blog.signals.post_viewed", "custom"),
)

BY_NAME = {w.name: w for w in WATCHED}


def receivers_of(name: str) -> list[dict[str, Any]]:
    """The live receivers of a watched signal, the dashboard's own excluded."""
    found = []
    for entry in BY_NAME[name].signal.receivers:
        ref = entry[1]
        func = ref() if isinstance(ref, weakref.ReferenceType) else ref
        if func is not None and not getattr(func, "dashboard_internal", False):
            found.append(receiver_info(func))
    return found
