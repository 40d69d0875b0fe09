"""Settings for the signals dashboard.

Embedded by default (SQLite, in-memory channel layer, one daphne process);
`DATABASE_URL` and `REDIS_URL` switch to real servers for scale-out.
"""

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    """From the environment, else a per-checkout key kept out of git."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = BASE_DIR / ".secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.write_text(key)
        path.chmod(0o600)
        return key


SECRET_KEY = _secret_key()
# Off unless asked for (DJANGO_DEBUG=1): Django's debug page shows any visitor the
# traceback and the settings. Static files are served either way (config/asgi.py).
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if h
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "blog",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Requests and the dashboard's history writer share the file: WAL lets
    # readers and a writer overlap, IMMEDIATE transactions queue writers
    # (instead of failing "database is locked"), and they wait up to 20 s.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory: the test server (a subprocess) must see the test's rows.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

    def _beside(name: str | Path) -> str:
        """db.sqlite3 → db-history.sqlite3, in the same directory."""
        path = Path(name)
        return str(path.with_name(f"{path.stem}-history{path.suffix}"))

    # The dashboard's history in a file of its own (dashboard/routers.py): SQLite
    # locks a whole file for a write, and the history must not wait for the
    # blog's transactions, nor make them wait.
    DATABASES["dashboard"] = {
        **DATABASES["default"],
        "NAME": _beside(DATABASES["default"]["NAME"]),
        "TEST": {"NAME": _beside(DATABASES["default"]["TEST"]["NAME"])},
    }
    DATABASE_ROUTERS = ["dashboard.routers.HistoryRouter"]

if redis_url := os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's async pool stops at 100 connections by default,
                # which about 100 open dashboards exhaust.
                # redis-py 8 reads with a 5 s socket_timeout by default, which the
                # layer's idle blocking read hits every few seconds: none, as before.
                "hosts": [{"address": redis_url, "max_connections": 1000, "socket_timeout": None}],
                "capacity": 1000,
                # Lets several deployments (or test runs) share one Redis.
                "prefix": os.environ.get("CHANNELS_REDIS_PREFIX", "asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No LOGIN_URL: the dashboard logs in at its own page (dashboard/views.py `login`), which,
# unlike the admin's, lets in a viewer who is not staff.
# The admin's "delete selected" confirmation posts one field per object; the
# demo invites bulk deletes of thousands of posts (a burst of signals).
DATA_UPLOAD_MAX_NUMBER_FIELDS = 20_000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "dashboard": {"handlers": ["console"], "level": "INFO"},
    },
}

# The dashboard's own knobs; defaults live in dashboard/conf.py. It needs none:
# the demo only links its blog from the dashboard's navigation.
DASHBOARD = {"LINKS": [("Blog", "/blog/"), ("Playground", "/blog/playground/")]}
if editor := os.environ.get("DASHBOARD_EDITOR_URL"):  # e.g. vscode://file/{path}:{line}
    DASHBOARD["EDITOR_URL"] = editor
if max_rows := os.environ.get("DASHBOARD_MAX_ROWS"):  # tests: a small cap, quickly passed
    DASHBOARD["MAX_ROWS"] = int(max_rows)
