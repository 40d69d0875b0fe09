"""Where the project's own code sent a signal from: "blog/admin.py:42 in save_model".

Runs per event inside the sender's call, so every answer is cached: whether a
code object is the project's (not Django, not site-packages, not the
dashboard), and each call site's formatted text.
"""

import os
import sys
from types import CodeType

from django.conf import settings

from dashboard.core.identity import ByIdentity

# The project's own code lives under BASE_DIR (startproject sets it), else where it runs from.
PROJECT_ROOT = os.path.abspath(str(getattr(settings, "BASE_DIR", None) or os.getcwd()))
_PROJECT_ROOT = PROJECT_ROOT + os.sep
_DASHBOARD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Keyed by id(): hashing a code object hashes its bytecode and constants anew on
# every call (~0.2 µs for one of Django's), and the walk asks for several per event.
# Each entry goes with its code object (code compiled at run time, then dropped).
_is_project_code: ByIdentity[bool] = ByIdentity()
# "file:line in function" per code and instruction: the same call sites send again and
# again, and a line number is looked up, and formatted, once.
_origins: ByIdentity[dict[int, str]] = ByIdentity()


def is_project_file(filename: str) -> bool:
    """The project's own code: under its root, and neither the dashboard nor a package."""
    return (
        filename.startswith(_PROJECT_ROOT)
        and not filename.startswith(_DASHBOARD_DIR)
        and "site-packages" not in filename
        and f"{os.sep}.venv{os.sep}" not in filename
    )


def project_path(filename: str) -> str:
    return filename[len(_PROJECT_ROOT) :] if filename.startswith(_PROJECT_ROOT) else filename


def _project_code(code: CodeType) -> bool:
    return _is_project_code.put(code, is_project_file(code.co_filename))


def origin() -> str | None:
    """The innermost frame of the project's own code on the stack, if any."""
    frame = sys._getframe(2)  # CPython's, as Django's own code uses it
    known = _is_project_code
    while frame is not None:
        code = frame.f_code
        mine = known.get(id(code))
        if mine is None:
            mine = _project_code(code)
        if mine:
            sites = _origins.get(id(code))
            if sites is None:
                sites = _origins.put(code, {})
            where = sites.get(frame.f_lasti)
            if where is None:
                path = project_path(code.co_filename)
                where = sites[frame.f_lasti] = f"{path}:{frame.f_lineno} in {code.co_name}"
            return where
        frame = frame.f_back
    return None
