"""Play realistic blog traffic, so the dashboard can be shown under load.

    python manage.py simulate                      # 5 actions/s for 60 s against 127.0.0.1:8000
    python manage.py simulate --rate 50 --duration 120 --url http://127.0.0.1:8080
    python manage.py simulate --in-process         # no server: Django's test client, here

Readers list the posts, read them and comment; editors add drafts, edit and
publish them, tag and delete their own posts in the admin; now and then a page
fails. Every action is one HTTP request, with the requests and signals a
browser's would cause. Against a server (the default) the events are captured
there and reach every dashboard live. --in-process runs the same requests
through Django's test client in this process: its events are stored (the
dashboard shows them on reload), and reach open dashboards live only through a
shared channel layer (REDIS_URL).

Only posts titled "Simulated: …" are edited or deleted. Editors act as a staff
user (--user, default the demo superuser): over HTTP the command opens a session
for it in the database, as a login would, and closes it at the end.
"""

import http.cookiejar
import random
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from blog.models import Post, Tag

PREFIX = "Simulated: "
WORDS = [
    "signals", "receivers", "models", "transactions", "requests", "caching", "queries",
    "migrations", "admin", "templates", "forms", "sessions", "settings", "middleware",
]  # fmt: skip
NAMES = ["Ada", "Grace", "Linus", "Guido", "Barbara", "Ken", "Margaret", "Dennis"]


@dataclass
class Response:
    status: int
    location: str = ""


class Browser:
    """One visitor's way to the site: real HTTP to a server, or Django's test client."""

    def __init__(self, url: str | None, user: Any | None) -> None:
        self.url = url.rstrip("/") if url else None
        self.csrf = secrets.token_hex(16)  # ours: sent as the cookie and the form field
        self.session_key: str | None = None
        if self.url is None:
            from django.test import Client

            self.client = Client(raise_request_exception=False, HTTP_HOST=allowed_host())
            if user is not None:
                self.client.force_login(user)
            self.client.cookies["csrftoken"] = self.csrf
        else:
            jar = http.cookiejar.CookieJar()
            self.opener = urllib.request.build_opener(
                urllib.request.HTTPCookieProcessor(jar), NoRedirect()
            )
            host = urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"
            cookies = {"csrftoken": self.csrf}
            if user is not None:
                self.session_key = open_session(user)
                cookies[settings.SESSION_COOKIE_NAME] = self.session_key
            for name, value in cookies.items():
                jar.set_cookie(cookie(host, name, value))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, Any]) -> Response:
        return self.request("POST", path, {**data, "csrfmiddlewaretoken": self.csrf})

    def request(self, method: str, path: str, data: dict[str, Any] | None = None) -> Response:
        if self.url is None:
            r = self.client.get(path) if method == "GET" else self.client.post(path, data or {})
            return Response(r.status_code, r.get("Location", ""))
        body = urllib.parse.urlencode(data or {}, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("Referer", self.url + path)
        try:
            with self.opener.open(req, timeout=30) as r:
                r.read()
                return Response(r.status, r.headers.get("Location", ""))
        except urllib.error.HTTPError as e:
            e.read()
            return Response(e.code, e.headers.get("Location", ""))

    def close(self) -> None:
        if self.session_key:
            engine = import_module(settings.SESSION_ENGINE)
            engine.SessionStore(session_key=self.session_key).delete()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (the admin's after a save): not followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def allowed_host() -> str:
    """A Host header the site accepts (the test client's `testserver` is not one)."""
    for host in settings.ALLOWED_HOSTS:
        if host and host != "*" and not host.startswith("."):
            return host
    return "localhost"


def cookie(host: str, name: str, value: str) -> http.cookiejar.Cookie:
    return http.cookiejar.Cookie(
        0, name, value, None, False, host, True, False, "/", True, False, None, False, None,
        None, {},
    )  # fmt: skip


def open_session(user: Any) -> str:
    """A session for `user`, as logging in makes one (same database as the server)."""
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def post_form(post: Post | None, **changes: Any) -> dict[str, Any]:
    """The admin's change form for a post, as a browser would send it."""
    data: dict[str, Any] = {
        "title": post.title if post else "",
        "slug": post.slug if post else "",
        "body": post.body if post else "",
        "status": post.status if post else "draft",
        "author": post.author_id or "" if post else "",
        "tags": [t.pk for t in post.tags.all()] if post else [],
        "comments-TOTAL_FORMS": "0",
        "comments-INITIAL_FORMS": "0",
        "comments-MIN_NUM_FORMS": "0",
        "comments-MAX_NUM_FORMS": "1000",
        "_save": "Save",
    }
    data.update(changes)
    return data


def sentence(rng: random.Random, n: int = 8) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


class Traffic:
    """The actions, each one request (or two), and what they did."""

    def __init__(self, url: str | None, user: Any, rng: random.Random) -> None:
        self.url, self.user, self.rng = url, user, rng
        self.local = threading.local()
        self.browsers: list[Browser] = []
        self.lock = threading.Lock()

    def browser(self, staff: bool) -> Browser:
        """One browser per thread and kind (a reader's has no login)."""
        name = "staff" if staff else "reader"
        found = getattr(self.local, name, None)
        if found is None:
            found = Browser(self.url, self.user if staff else None)
            setattr(self.local, name, found)
            with self.lock:
                self.browsers.append(found)
        return found

    def published(self) -> Post | None:
        return Post.objects.filter(status=Post.Status.PUBLISHED).order_by("?").first()

    def simulated(self, **kwargs: Any) -> Post | None:
        return Post.objects.filter(title__startswith=PREFIX, **kwargs).order_by("?").first()

    # -- readers --

    def read_list(self) -> tuple[str, Response]:
        return "GET /blog/", self.browser(False).get("/blog/")

    def read_post(self) -> tuple[str, Response]:
        post = self.published()
        if post is None:
            return self.read_list()
        path = f"/blog/{post.slug}/"
        return f"GET {path}", self.browser(False).get(path)

    def comment(self) -> tuple[str, Response]:
        post = self.published()
        if post is None:
            return self.read_list()
        path = f"/blog/{post.slug}/comment/"
        data = {"name": self.rng.choice(NAMES), "body": sentence(self.rng, 6)}
        return f"POST {path}", self.browser(False).post(path, data)

    def fail(self) -> tuple[str, Response]:
        return "GET /blog/error/", self.browser(False).get("/blog/error/")

    # -- editors, in the admin --

    def add_draft(self) -> tuple[str, Response]:
        title = PREFIX + sentence(self.rng, 4).rstrip(".")
        path = "/admin/blog/post/add/"
        form = post_form(None, title=title, body=sentence(self.rng, 20), author=self.user.pk)
        return f"POST {path}", self.browser(True).post(path, form)

    def edit(self) -> tuple[str, Response]:
        post = self.simulated()
        if post is None:
            return self.add_draft()
        path = f"/admin/blog/post/{post.pk}/change/"
        form = post_form(post, body=post.body + " " + sentence(self.rng, 6))
        return f"POST {path}", self.browser(True).post(path, form)

    def publish(self) -> tuple[str, Response]:
        post = self.simulated(status=Post.Status.DRAFT)
        if post is None:
            return self.add_draft()
        path = f"/admin/blog/post/{post.pk}/change/"
        return f"POST {path}", self.browser(True).post(path, post_form(post, status="published"))

    def tag(self) -> tuple[str, Response]:
        post = self.simulated()
        tags = list(Tag.objects.order_by("?").values_list("pk", flat=True)[:2])
        if post is None or not tags:
            return self.add_draft()
        path = f"/admin/blog/post/{post.pk}/change/"
        return f"POST {path}", self.browser(True).post(path, post_form(post, tags=tags))

    def delete(self) -> tuple[str, Response]:
        post = self.simulated()
        if post is None:
            return self.add_draft()
        path = f"/admin/blog/post/{post.pk}/delete/"
        return f"POST {path}", self.browser(True).post(path, {"post": "yes"})

    def close(self) -> None:
        for browser in self.browsers:
            browser.close()


# (kind, weight, action): the odd error's weight is --errors.
MIX: list[tuple[str, float, Callable[[Traffic], tuple[str, Response]]]] = [
    ("reader", 30, Traffic.read_list),
    ("reader", 40, Traffic.read_post),
    ("comment", 8, Traffic.comment),
    ("editor", 7, Traffic.add_draft),
    ("editor", 6, Traffic.edit),
    ("editor", 4, Traffic.publish),
    ("editor", 3, Traffic.tag),
    ("editor", 2, Traffic.delete),
]


KINDS = ("reader", "comment", "editor", "error")


class Command(BaseCommand):
    help = "Play realistic blog traffic (readers, editors, comments, the odd error) for a while."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rate", type=float, default=5.0, help="actions per second (5)")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds (60)")
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000",
            help="the running site to send the requests to (http://127.0.0.1:8000)",
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="no server: send the requests through Django's test client, in this process",
        )
        parser.add_argument("--errors", type=float, default=1.0, help="percent of failing pages")
        parser.add_argument("--workers", type=int, default=4, help="requests in flight at most")
        parser.add_argument("--user", help="the staff user editors act as (the first superuser)")
        parser.add_argument("--seed", type=int, help="for the same traffic again")

    def handle(self, *args: Any, **options: Any) -> None:
        rate, duration = options["rate"], options["duration"]
        if rate <= 0 or duration <= 0:
            raise CommandError("--rate and --duration must be positive.")
        if not 0 <= options["errors"] <= 100:
            raise CommandError("--errors is a percentage: 0 to 100.")
        url = None if options["in_process"] else options["url"]
        user = self.staff_user(options["user"])
        if url is not None:
            self.check_server(url)
        rng = random.Random(options["seed"])
        traffic = Traffic(url, user, rng)
        mix = [*MIX, ("error", options["errors"], Traffic.fail)]
        weights = [w for _, w, _ in mix]
        where = url or "this process (Django's test client)"
        self.stdout.write(f"Simulating {rate:g} actions/s for {duration:g} s against {where}.")
        try:
            stats = self.play(traffic, mix, weights, rate, duration, options["workers"], rng)
        finally:
            traffic.close()
        self.report(stats, final=True)

    def staff_user(self, username: str | None) -> Any:
        User = get_user_model()
        users = User.objects.filter(is_active=True, is_staff=True)
        user = users.filter(username=username).first() if username else (
            users.filter(is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError(
                f"No active staff user {username!r}." if username else
                "No superuser for the editors: run `python manage.py demo_setup` first."
            )  # fmt: skip
        return user

    def check_server(self, url: str) -> None:
        try:
            urllib.request.urlopen(url.rstrip("/") + "/blog/", timeout=5).read()
        except urllib.error.HTTPError:
            return  # it answers
        except OSError as exc:
            raise CommandError(
                f"Nothing answers at {url} ({exc}). Start the site (make run), give its "
                "address with --url, or run without one with --in-process."
            ) from None

    def play(
        self,
        traffic: Traffic,
        mix: list[Any],
        weights: list[float],
        rate: float,
        duration: float,
        workers: int,
        rng: random.Random,
    ) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "start": time.monotonic(), "done": 0, "kinds": Counter(), "statuses": Counter(),
            "failed": 0, "last": "", "duration": duration,
        }  # fmt: skip
        lock = threading.Lock()
        in_flight = threading.BoundedSemaphore(workers)

        def one(kind: str, action: Callable[[Traffic], tuple[str, Response]]) -> None:
            try:
                what, response = action(traffic)
                with lock:
                    stats["kinds"][kind] += 1
                    stats["statuses"][response.status // 100] += 1
                    stats["last"] = f"{what} {response.status}"
            except Exception as exc:  # a failed action is counted, never fatal
                with lock:
                    stats["failed"] += 1
                    stats["last"] = f"{type(exc).__name__}: {exc}"
                # Each worker keeps its connection between actions; after a failure (the
                # database restarted) it opens a new one for the next.
                connections.close_all()  # this thread's
            finally:
                with lock:
                    stats["done"] += 1
                in_flight.release()

        start = stats["start"]
        last_report = start
        with ThreadPoolExecutor(workers, thread_name_prefix="simulate") as pool:
            n = 0
            while True:
                due = start + n / rate
                now = time.monotonic()
                if due - start >= duration:
                    break
                if due > now:
                    time.sleep(min(due - now, 0.25))
                    if due > time.monotonic():
                        continue
                kind, _, action = rng.choices(mix, weights)[0]
                in_flight.acquire()
                pool.submit(one, kind, action)
                n += 1
                if time.monotonic() - last_report >= (0.5 if self.tty else 5):
                    last_report = time.monotonic()
                    with lock:
                        self.report(stats)
        return stats

    @property
    def tty(self) -> bool:
        return sys.stdout.isatty()

    def report(self, stats: dict[str, Any], final: bool = False) -> None:
        elapsed = time.monotonic() - stats["start"]
        done = stats["done"]
        kinds = " ".join(f"{k} {stats['kinds'][k]}" for k in KINDS)
        statuses = stats["statuses"]
        line = (
            f"[{min(elapsed, stats['duration']):5.1f}/{stats['duration']:g} s] {done} requests "
            f"({done / elapsed if elapsed else 0:.1f}/s) · {kinds} · "
            f"answers 2xx/3xx {statuses[2] + statuses[3]}, 4xx {statuses[4]}, 5xx {statuses[5]}"
        )
        if not final:
            last = re.sub(r"\s+", " ", stats["last"])[:60]
            line += f" · last: {last}"
            if self.tty:
                self.stdout.write("\r\x1b[K" + line, ending="")
                self.stdout.flush()
            else:
                self.stdout.write(line)
            return
        if self.tty:
            self.stdout.write("\r\x1b[K", ending="")
        self.stdout.write(self.style.SUCCESS("Done: ") + line)
        if stats["failed"]:
            self.stdout.write(f"{stats['failed']} actions failed; the last: {stats['last']}")
