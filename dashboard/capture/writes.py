"""Writes that send no signal, shown as events of their own.

`QuerySet.update()`, `bulk_create()`, `bulk_update()` and a delete that Django
takes its fast path for (no pre_delete/post_delete receiver, nothing to cascade)
change rows without a pre_save/post_save or pre_delete/post_delete: a row that
says so ("blog.Post · QuerySet.update · 12 rows, no pre_save/post_save sent"),
with its call site, in the model family. The methods are Django's public API,
wrapped class-wide like Signal's send methods (capture/dispatch.py); the cost
is paid by these calls only (measured: bench/README.md).
"""

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete

from dashboard.capture import context, record
from dashboard.capture.origin import origin
from dashboard.capture.snapshot import model_label
from dashboard.core import keys
from dashboard.core.events import Event
from dashboard.core.quiet import quiet
from dashboard.live.handoff import handoff

logger = logging.getLogger("dashboard")
ORIGINAL: dict[str, Callable[..., Any]] = {}
NO_SAVE_SIGNALS = "no pre_save/post_save sent"


def _publish(queryset: QuerySet, method: str, rows: int, extra: dict[str, Any]) -> None:
    """Never raises: the write has happened; telling of it must not undo the caller."""
    try:
        if quiet.get() or record.is_ignored_model(queryset.model):
            return
        info = context.current_request.get()
        event = Event(
            signal=f"QuerySet.{method}",
            family="model",
            sender=model_label(queryset.model),
            raw={"rows": rows, "using": queryset.db, **extra},
            request_id=info.id if info else None,
            origin=origin(),
        )
        event.cid = keys.next_cid()
        handoff.publish(event)
    except Exception:
        logger.exception("dashboard: could not tell of a QuerySet.%s", method)


def _update(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def update(self: QuerySet, **kwargs: Any) -> Any:
        rows = method(self, **kwargs)
        _publish(self, "update", rows, {"fields": sorted(kwargs), "note": NO_SAVE_SIGNALS})
        return rows

    return update


def _bulk_create(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def bulk_create(self: QuerySet, objs: Any, *args: Any, **kwargs: Any) -> Any:
        created = method(self, objs, *args, **kwargs)
        _publish(self, "bulk_create", len(created), {"note": NO_SAVE_SIGNALS})
        return created

    return bulk_create


def _bulk_update(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def bulk_update(self: QuerySet, objs: Any, fields: Any, *args: Any, **kwargs: Any) -> Any:
        rows = method(self, objs, fields, *args, **kwargs)
        _publish(self, "bulk_update", rows, {"fields": list(fields), "note": NO_SAVE_SIGNALS})
        return rows

    return bulk_update


def _delete(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def delete(self: QuerySet) -> Any:
        model = self.model
        # Django sends pre/post_delete only to listeners; without any it may delete
        # in one statement (its fast path), and no signal says so.
        silent = not (pre_delete.has_listeners(model) or post_delete.has_listeners(model))
        deleted, per_model = result = method(self)
        if silent:
            _publish(self, "delete", deleted, {
                "per_model": per_model, "note": "no pre_delete/post_delete sent",
            })  # fmt: skip
        return result

    return delete


WRAPS = {"update": _update, "bulk_create": _bulk_create, "bulk_update": _bulk_update,
         "delete": _delete}  # fmt: skip


def install() -> None:
    if ORIGINAL:
        return
    for name, wrap in WRAPS.items():
        ORIGINAL[name] = getattr(QuerySet, name)
        setattr(QuerySet, name, wrap(ORIGINAL[name]))


def uninstall() -> None:
    for name, method in ORIGINAL.items():
        setattr(QuerySet, name, method)
    ORIGINAL.clear()
