"""The demo's settings with USE_TZ = False, as many older projects run: Django keeps naive
times in TIME_ZONE then (test_time_zones.py)."""

from config.settings import *  # noqa: F403

USE_TZ = False
TIME_ZONE = "America/New_York"  # never UTC: a time stored in UTC would read hours off
