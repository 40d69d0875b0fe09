"""The playground: one button per thing a learner wants to see the signals of.

Each action runs in a request of its own (POST /blog/playground/<action>/); the
page then shows that request's events, read from the dashboard's history by
the request's id, and the dashboard shows them live. Staff only: the actions
write to the database.

The sentences are Django's documentation of each signal, shortened
(https://docs.djangoproject.com/en/stable/ref/signals/).
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.test.utils import override_settings
from django.views.decorators.http import require_POST

from blog.models import Comment, Post, Tag
from blog.signals import post_viewed

LEARNER = "learner"  # the account the login buttons use, in a session of its own


@dataclass(frozen=True)
class Action:
    key: str
    section: str
    title: str
    signals: str  # what it sends, as the page names it
    doc: str  # one sentence: what the signal is for and what its arguments mean
    run: Callable[[HttpRequest, str], str]  # (request, token) -> what was done


class Rollback(Exception):
    """Raised inside atomic() to roll it back, on purpose."""


def _post(title: str = "Playground post") -> Post:
    """The newest playground post, made if there is none (its own signals then show too)."""
    post = Post.objects.filter(title__startswith="Playground").order_by("-pk").first()
    return post or Post.objects.create(title=title, body="Made by the playground.")


def _tags() -> list[Tag]:
    return [Tag.objects.get_or_create(name=name)[0] for name in ("playground", "signals")]


def create_post(request: HttpRequest, token: str) -> str:
    n = Post.objects.filter(title__startswith="Playground").count() + 1
    post = Post.objects.create(title=f"Playground post {n}", body="Made by the playground.")
    return f"Created “{post}” (pk {post.pk})."


def update_post(request: HttpRequest, token: str) -> str:
    post = _post()
    post.body = f"Edited by the playground ({token})."
    post.save()
    return f"Saved “{post}” again with a new body: its post_save detail shows the diff."


def delete_post(request: HttpRequest, token: str) -> str:
    post = _post()
    title = str(post)
    post.delete()
    return f"Deleted “{title}”."


def add_tags(request: HttpRequest, token: str) -> str:
    post = _post()
    post.tags.add(*_tags())
    return f"Added the tags playground and signals to “{post}”."


def remove_tags(request: HttpRequest, token: str) -> str:
    post = _post()
    post.tags.add(*_tags())  # so that there is something to remove
    post.tags.remove(_tags()[0])
    return f"Added both tags (so one could go), then removed playground from “{post}”."


def clear_tags(request: HttpRequest, token: str) -> str:
    post = _post()
    post.tags.add(*_tags())
    post.tags.clear()
    return f"Added both tags, then cleared every tag of “{post}”."


def _learner() -> Any:
    User = get_user_model()
    user, made = User.objects.get_or_create(username=LEARNER)
    if made:
        user.set_unusable_password()
        user.save()
    return user


def _side_request(request: HttpRequest) -> HttpRequest:
    """A request with a session of its own: logging the learner in and out
    leaves your own session (and the dashboard's) as it is."""
    side = HttpRequest()
    side.method, side.path = "POST", request.path
    side.META = {"REMOTE_ADDR": request.META.get("REMOTE_ADDR", ""), "CSRF_COOKIE": ""}
    side.session = SessionStore()
    side.user = AnonymousUser()
    return side


def log_in(request: HttpRequest, token: str) -> str:
    side = _side_request(request)
    login(side, _learner(), backend="django.contrib.auth.backends.ModelBackend")
    return f"Logged {LEARNER} in, in a session of its own (yours is untouched)."


def log_in_wrong(request: HttpRequest, token: str) -> str:
    side = _side_request(request)
    _learner()
    user = authenticate(side, username=LEARNER, password=f"wrong-{token}")
    assert user is None
    return f"Tried to log {LEARNER} in with a wrong password: refused."


def log_out(request: HttpRequest, token: str) -> str:
    side = _side_request(request)
    login(side, _learner(), backend="django.contrib.auth.backends.ModelBackend")
    logout(side)
    return f"Logged {LEARNER} in (in a session of its own), then out."


def rolled_back(request: HttpRequest, token: str) -> str:
    try:
        with transaction.atomic():
            Post.objects.create(title="Playground: never committed")
            raise Rollback
    except Rollback:
        pass
    return "Created a post inside atomic(), then raised: the transaction rolled back."


def savepoint_rolled_back(request: HttpRequest, token: str) -> str:
    with transaction.atomic():
        kept = Post.objects.create(title="Playground: kept (outer transaction)")
        try:
            with transaction.atomic():  # nested: a savepoint
                Post.objects.create(title="Playground: rolled back (savepoint)")
                raise Rollback
        except Rollback:
            pass
    return f"Kept “{kept}”; the post saved inside the savepoint rolled back with it."


def setting_changed(request: HttpRequest, token: str) -> str:
    # A setting of the playground's own, for a moment: other requests never read it.
    with override_settings(PLAYGROUND_GREETING=f"hello {token}"):
        pass
    return "Entered and left override_settings(PLAYGROUND_GREETING=…)."


def publish(request: HttpRequest, token: str) -> str:
    post = Post.objects.create(title=f"Playground post to publish {token[:6]}")
    post.status = Post.Status.PUBLISHED
    post.save()  # becomes published: Post.save() sends post_published
    return f"Created a draft, then published it: “{post}”."


def view_post(request: HttpRequest, token: str) -> str:
    post = _post()
    post_viewed.send(sender=Post, post=post, request=request)
    return f"Sent post_viewed for “{post}”, as the post's page does."


def fail(request: HttpRequest, token: str) -> str:
    raise RuntimeError(f"The playground fails on purpose ({token}).")


def queryset_update(request: HttpRequest, token: str) -> str:
    n = Post.objects.filter(title__startswith="Playground").update(body=f"Bulk-edited ({token}).")
    return (
        f"Updated {n} post{'s' if n != 1 else ''} with one UPDATE: no model signal was sent; "
        "the dashboard shows the write as a QuerySet.update row of its own."
    )


def bulk_create(request: HttpRequest, token: str) -> str:
    made = Post.objects.bulk_create(
        Post(title=f"Playground bulk {token[:6]} {i}", slug=f"playground-bulk-{token[:6]}-{i}")
        for i in range(3)
    )
    return (
        f"Inserted {len(made)} posts with one bulk_create(): no model signal was sent; the "
        "dashboard shows the write as a QuerySet.bulk_create row of its own."
    )


def comment(request: HttpRequest, token: str) -> str:
    post = _post()
    Comment.objects.create(post=post, name="playground", body=f"A comment ({token}).")
    return (
        f"Commented on “{post}”: the blog's bump_post_on_comment receiver saved the post, so "
        "its pre_save and post_save were caused by the comment's post_save (open its detail)."
    )


def raw_sql(request: HttpRequest, token: str) -> str:
    post = _post()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE blog_post SET body = %s WHERE id = %s",
                       [f"Written with raw SQL ({token}).", post.pk])  # fmt: skip
        rows = cursor.rowcount
    return (
        f"Ran an UPDATE of blog_post through a cursor ({rows} row): no model signal; the "
        "dashboard shows it as a cursor.execute row in blog.Post's family, with its call site."
    )


def load_fixture(request: HttpRequest, token: str) -> str:
    call_command("loaddata", "playground_tags", verbosity=0)
    return (
        "Loaded blog/fixtures/playground_tags.json with loaddata: its saves send pre_save "
        "and post_save with raw=True (marked raw in the rows)."
    )


SAVE_DOC = (
    "<code>pre_save</code> and <code>post_save</code> are sent before and after a model's "
    "<code>save()</code>: <code>instance</code> is the object saved, <code>created</code> "
    "(post_save) is True when a new row was inserted, <code>raw</code> is True when loading "
    "a fixture, <code>using</code> names the database and <code>update_fields</code> the fields "
    "passed to <code>save(update_fields=…)</code>."
)
M2M_DOC = (
    "<code>m2m_changed</code> is sent when a many-to-many field changes: <code>action</code> "
    "says what (<code>pre_add</code>/<code>post_add</code>, <code>pre_remove</code>/"
    "<code>post_remove</code>, <code>pre_clear</code>/<code>post_clear</code>), "
    "<code>instance</code> is the object changed, <code>model</code> the class of what was "
    "added or removed, <code>pk_set</code> their primary keys (None for a clear) and "
    "<code>reverse</code> tells from which side the change was made."
)
ROLLBACK_DOC = (
    "Signals are sent when <code>save()</code> runs, not when the transaction commits: a "
    "receiver sees data that may never exist. The dashboard strikes such events through and "
    "badges them <em>rolled back</em>; do after-commit work in "
    "<code>transaction.on_commit()</code>."
)

ACTIONS = [
    Action("create", "Models", "Create a post", "pre_save, post_save (created)", SAVE_DOC,
           create_post),
    Action("update", "Models", "Update a post", "pre_save, post_save (with a field diff)",
           SAVE_DOC, update_post),
    Action("delete", "Models", "Delete a post", "pre_delete, post_delete",
           "<code>pre_delete</code> and <code>post_delete</code> are sent before and after a "
           "model instance is deleted: <code>instance</code> is the object (after the delete its "
           "row is gone), <code>origin</code> the instance or QuerySet whose "
           "<code>delete()</code> began it, <code>using</code> the database.", delete_post),
    Action("add-tags", "Many-to-many", "Add tags", "m2m_changed pre_add, post_add", M2M_DOC,
           add_tags),
    Action("remove-tags", "Many-to-many", "Remove a tag", "m2m_changed pre_remove, post_remove",
           M2M_DOC, remove_tags),
    Action("clear-tags", "Many-to-many", "Clear the tags", "m2m_changed pre_clear, post_clear",
           M2M_DOC, clear_tags),
    Action("login", "Authentication", "Log in", "user_logged_in",
           "<code>user_logged_in</code> is sent when a user logs in successfully: "
           "<code>sender</code> is the user's class, <code>request</code> the current request and "
           "<code>user</code> the user who logged in. (Django's own receiver updates "
           "<code>last_login</code>: a save of the user follows.)", log_in),
    Action("login-wrong", "Authentication", "Log in with a wrong password", "user_login_failed",
           "<code>user_login_failed</code> is sent when a login fails: <code>credentials</code> "
           "holds what was tried (Django masks the password), <code>request</code> the request, "
           "if any.",
           log_in_wrong),
    Action("logout", "Authentication", "Log out", "user_logged_in, user_logged_out",
           "<code>user_logged_out</code> is sent when <code>logout()</code> is called: "
           "<code>request</code> is the request and <code>user</code> the user who logged out "
           "(None if nobody was logged in).", log_out),
    Action("rollback", "Transactions", "Save inside a transaction that rolls back",
           "pre_save, post_save, marked rolled back", ROLLBACK_DOC, rolled_back),
    Action("savepoint", "Transactions", "Save inside a savepoint that rolls back",
           "two saves: the outer one kept, the inner one rolled back", ROLLBACK_DOC,
           savepoint_rolled_back),
    Action("setting", "Settings", "Change a setting with override_settings",
           "setting_changed (enter, then exit)",
           "<code>setting_changed</code> is sent when a setting changes through "
           "<code>override_settings</code> (or a test's <code>settings()</code>): "
           "<code>setting</code> is its name, <code>value</code> its new value (None once "
           "the override ends) and <code>enter</code> is True on entering, False on leaving.",
           setting_changed),
    Action("publish", "The blog's own signals", "Publish a post",
           "pre_save, post_save, post_published",
           "<code>post_published</code> (blog/signals.py) is sent once, when a post becomes "
           "published: <code>sender</code> is Post and <code>post</code> the post, already "
           "saved; its receiver stamps <code>published_at</code> with <code>update()</code> "
           "(a <code>QuerySet.update</code> row under it in the detail's tree). Its other "
           "receiver, <code>notify_subscribers</code>, never runs: it was connected for the "
           "string <code>\"blog.Post\"</code>, not the model (the detail says so, and the "
           "Diagnostics page).", publish),
    Action("view", "The blog's own signals", "View a post", "post_viewed",
           "<code>post_viewed</code> (blog/signals.py) is sent by the post's page each time it "
           "is shown: <code>post</code> is the post and <code>request</code> the request.",
           view_post),
    Action("error", "Requests", "An unhandled exception", "got_request_exception",
           "<code>got_request_exception</code> is sent when a view raises: "
           "<code>sender</code> is the handler class (None under ASGI) and "
           "<code>request</code> the request; the dashboard adds the exception and its last "
           "frames. The response is a 500.", fail),
    Action("comment", "What caused what", "Comment on a post",
           "post_save of the comment, then pre_save and post_save of its post",
           "A receiver that saves another model causes new signals inside its own dispatch: "
           "the blog's <code>bump_post_on_comment</code> (a <code>post_save</code> receiver for "
           "Comment) saves the post. The dashboard records which dispatch each event was sent "
           "from: the detail shows the tree, each receiver with its time and its own SQL "
           "queries, and the request as a waterfall.", comment),
    Action("update-queryset", "Writes that send no signal", "QuerySet.update()",
           "no pre_save or post_save",
           "<code>QuerySet.update()</code> runs one SQL UPDATE: Django calls no "
           "<code>save()</code> and sends no <code>pre_save</code> or <code>post_save</code> "
           "(only this request's own signals show). Receivers that must see every change "
           "miss these; the dashboard shows such a write as a row of its own, "
           "<code>QuerySet.update</code>, with its row count.", queryset_update),
    Action("bulk-create", "Writes that send no signal", "bulk_create()",
           "no pre_save or post_save",
           "<code>bulk_create()</code> inserts many rows at once: Django's documentation says "
           "the model's <code>save()</code> is not called and <code>pre_save</code> and "
           "<code>post_save</code> are not sent; the dashboard shows the write as a "
           "<code>QuerySet.bulk_create</code> row.", bulk_create),
    Action("raw-sql", "Writes that send no signal", "Raw SQL through a cursor",
           "no model signal",
           "SQL run through <code>connection.cursor()</code> bypasses the ORM: no "
           "<code>save()</code>, no signal. The dashboard watches each connection's writes "
           "(an execute wrapper, Django's <code>connection.execute_wrapper</code> API) and "
           "shows an INSERT, UPDATE or DELETE the ORM did not run as a "
           "<code>cursor.execute</code> row, in the family of the table's model.", raw_sql),
    Action("loaddata", "Writes that send no signal", "loaddata (raw saves)",
           "pre_save, post_save with raw=True",
           "<code>loaddata</code> saves each object as it is in the fixture: Django sends "
           "<code>pre_save</code> and <code>post_save</code> with <code>raw=True</code> and "
           "does not call the model's <code>save()</code> (receivers should not query the "
           "database then: it may be incomplete). The rows say <em>raw</em>.", load_fixture),
]  # fmt: skip
BY_KEY = {a.key: a for a in ACTIONS}


@staff_member_required
def page(request: HttpRequest) -> HttpResponse:
    sections: dict[str, list[Action]] = {}
    for action in ACTIONS:
        sections.setdefault(action.section, []).append(action)
    return render(request, "blog/playground.html", {"sections": sections.items()})


@require_POST
@staff_member_required
def run(request: HttpRequest, key: str) -> HttpResponse:
    action = BY_KEY.get(key)
    if action is None:
        raise Http404(f"No playground action {key!r}.")
    token = request.POST.get("token") or secrets.token_hex(6)
    done = action.run(request, token[:32])
    return JsonResponse({"done": done, "request": _request_id()})


def _request_id() -> str | None:
    """The id the dashboard gave this request (its events carry it), if it runs."""
    try:
        from dashboard.capture.context import current_request
    except ImportError:  # the dashboard is not installed: the page says so
        return None
    info = current_request.get()
    return info.id if info else None
