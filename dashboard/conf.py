"""The dashboard's settings, read from `settings.DASHBOARD` with defaults.

Read on hot paths (per event, per payload value), so they are merged once
and cached; a change of DASHBOARD (override_settings in tests) clears it.
"""

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Seconds one frame may coalesce events for under load; an idle pipeline
    # sends the first event at once.
    "BATCH_WINDOW": 0.05,
    # Events waiting for the publisher; past it they are dropped and counted.
    "QUEUE_SIZE": 10_000,
    # Rows the browser keeps, and so the most rows one frame carries.
    "MAX_ROWS": 500,
    # Longest text shown for one payload value.
    "VALUE_LIMIT": 200,
    # Query the stored row on pre_save of an update, so post_save can show a diff.
    "DIFFS": True,
    # History: the newest events kept, and for how long (seconds).
    "HISTORY_MAX_EVENTS": 10_000,
    "HISTORY_MAX_AGE": 7 * 24 * 3600,
    # The channel-layer group every dashboard socket joins.
    "GROUP": "signals-dashboard",
    # Path prefixes whose requests are the dashboard's own and never captured
    # (besides "/" itself and STATIC_URL).
    "QUIET_PATHS": ("/dashboard/", "/ws/", "/favicon.ico"),
}


_merged: dict[str, Any] | None = None


def get(name: str) -> Any:
    global _merged
    if _merged is None:
        _merged = {**DEFAULTS, **getattr(settings, "DASHBOARD", {})}
    return _merged[name]


def _forget(setting: str, **kwargs: Any) -> None:
    global _merged
    if setting == "DASHBOARD":
        _merged = None


setting_changed.connect(_forget, dispatch_uid="dashboard:conf")
