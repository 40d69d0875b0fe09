#!/usr/bin/env python
"""A host project that uses the dashboard as any project would (tests/test_dropin.py)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
