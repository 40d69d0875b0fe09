"""Who may see which events: the one rule, for the history and live frames alike.

Seeing the dashboard at all takes the permission VIEW (`dashboard.view_storedevent`,
Django's view permission of the history's model; superusers have it). Within it,
an event is shown only to those who may view what it is about, as the admin
would show it to them:

- an event sent by a model (its sender is `app.Model`: saves, deletes, m2m
  changes, a host's own signals sent by a model) needs that model's view
  permission (`blog.view_post`; `admin.view_logentry` for admin actions; an m2m
  through model's, that of the model it belongs to);
- auth's signals (logins, logouts, failed logins) and session rows need
  `auth.view_user`: they name users.

Everything else (requests, new connections, setting changes, signals sent by
anything but a model) is shown to every viewer. History reads exclude `hidden()`;
a live frame names the permissions its rows need (`perms_of()`), and a socket
whose user lacks one of them takes that frame from the history instead
(live/consumer.py), so the rule is applied in one place: here, in SQL.
"""

import functools
from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.contrib.auth import get_permission_codename
from django.db.models import Q

VIEW = "dashboard.view_storedevent"
VIEW_USERS = "auth.view_user"
# Senders whose rows name users, whatever their own model's permission says.
ABOUT_USERS = frozenset({"sessions.Session"})


@functools.lru_cache(maxsize=4096)
def needs(family: str, sender: str) -> str | None:
    """The permission an event of this family and sender needs, besides VIEW."""
    if family == "auth" or sender in ABOUT_USERS:
        return VIEW_USERS
    app_label, dot, name = sender.partition(".")
    if not dot:
        return None
    try:
        model = apps.get_model(app_label, name)
    except (LookupError, ValueError):
        return None
    opts = model._meta
    if opts.auto_created:  # an m2m through model: the model it belongs to
        opts = opts.auto_created._meta
    return f"{opts.app_label}.{get_permission_codename('view', opts)}"


def perms_of(rows: Iterable[Any]) -> list[str]:
    """The permissions some of these rows need (for a frame's message)."""
    return sorted({p for row in rows if (p := needs(row.family, row.sender)) is not None})


def allowed(user: Any) -> frozenset[str] | None:
    """The permissions of `user` that matter here; None: everything (a superuser)."""
    if user.is_active and user.is_superuser:
        return None
    return frozenset(user.get_all_permissions())


def hidden(perms: frozenset[str] | None) -> Q | None:
    """What a viewer with these permissions may not see, as a filter to exclude."""
    if perms is None:
        return None
    q = Q()
    if VIEW_USERS not in perms:
        q |= Q(family="auth")
    labels = [
        model._meta.label
        for model in apps.get_models(include_auto_created=True)
        if needs("", model._meta.label) not in perms
    ]
    if labels:
        q |= Q(sender__in=labels)
    return q or None


def visible(events: Any, perms: frozenset[str] | None) -> Any:
    """A queryset of stored events, less what these permissions may not see."""
    q = hidden(perms)
    return events if q is None else events.exclude(q)


def may_see(perms: frozenset[str] | None, needed: Iterable[str]) -> bool:
    return perms is None or all(p in perms for p in needed)
