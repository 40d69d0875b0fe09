"""The demo's settings with one more page, /slow-rollback/ (tests/urls_slow_rollback.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.urls_slow_rollback"
