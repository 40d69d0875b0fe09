"""The dashboard's pages: the live table, an event's detail, exports. For users with
the dashboard's permission, each shown what it may see (history/access.py)."""

import functools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render, resolve_url
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from dashboard import conf
from dashboard.capture.origin import is_project_file
from dashboard.capture.signals import discovered, receivers_of
from dashboard.core.events import WRITE_EVENTS
from dashboard.core.filters import EventFilter
from dashboard.core.keys import parse_key
from dashboard.core.render import ROLLED_BACK_BADGE, rates_json
from dashboard.core.rows import in_described_order, shown_zone, to_json
from dashboard.core.senders import ANOTHER_SENDER
from dashboard.diagnostics import report as diagnostics_report
from dashboard.history import access, export, reads, snippets
from dashboard.history.trace import place, request_bounds, subtree
from dashboard.history.trace import tree as trace_tree
from dashboard.models import StoredEvent

DEFAULT_LOGIN_URL = "/accounts/login/"  # Django's own LOGIN_URL


def _login_url() -> str:
    """The project's login page: LOGIN_URL where it set one or has a page at Django's
    default; else the dashboard's own (`login`). Not the admin's: it turns away whoever
    is not staff, and the dashboard's permission does not need staff."""
    if settings.LOGIN_URL != DEFAULT_LOGIN_URL or _has_page(DEFAULT_LOGIN_URL):
        return resolve_url(settings.LOGIN_URL)
    return reverse("dashboard:login")


def _has_page(path: str) -> bool:
    """A view of its own at this path (django-allauth's at /accounts/login/), not a
    catch-all that takes any path as an argument (a CMS's pages: its 404 there)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return not match.args and not match.captured_kwargs  # not the route's own defaults


class ViewerLoginForm(AuthenticationForm):
    """Lets in only who may view the dashboard: its login must not become a way into the
    rest of the site for every account (the admin's lets in staff only)."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.has_perm(access.VIEW):
            raise ValidationError(
                "This account may not view the signals dashboard (it needs the permission "
                "%(permission)s).", code="not_a_viewer", params={"permission": access.VIEW},
            )  # fmt: skip


class Login(LoginView):
    """The dashboard's own login (Django's LoginView), only where the project has none:
    where it has one (single sign-on, a second factor), that one, never a way around it."""

    template_name = "dashboard/login.html"
    authentication_form = ViewerLoginForm
    next_page = "dashboard:index"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if (elsewhere := _login_url()) != reverse("dashboard:login"):
            back = self.get_redirect_url() or reverse("dashboard:index")
            return redirect_to_login(back, elsewhere)
        if request.user.is_authenticated and request.user.has_perm(access.VIEW):
            return HttpResponseRedirect(self.get_success_url())  # nothing to log in for
        return super().dispatch(request, *args, **kwargs)


login = Login.as_view()
# POST only (Django's LogoutView); back to the login page (the project's, where it has one).
logout = LogoutView.as_view(next_page="dashboard:login")


def viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The dashboard's permission (access.VIEW), checked on every request. Logged out
    (a session that ended): to the login page, the whole page for an htmx request
    (HX-Redirect), never a login form swapped into a panel. Logged in without it: 403.
    The view then sees `request.dashboard_perms`, what the user may see."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        htmx = HtmxDetails(request)
        if not user.is_authenticated:
            back = (htmx.current_url_abs_path if htmx else None) or request.get_full_path()
            login = redirect_to_login(back, _login_url())
            return HttpResponseClientRedirect(login["Location"]) if htmx else login
        if not (user.is_active and user.has_perm(access.VIEW)):
            if htmx:
                return render(request, "dashboard/ended.html", {"login_url": _login_url()},
                              status=403)  # fmt: skip
            context = {"permission": access.VIEW, "login_url": _login_url()}
            return render(request, "dashboard/forbidden.html", context, status=403)
        request.dashboard_perms = access.allowed(user)  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return checked


def _visible(request: HttpRequest, events: QuerySet | None = None) -> QuerySet:
    """Stored events, less what this user may not see."""
    if events is None:
        events = StoredEvent.objects.all()
    return access.visible(events, request.dashboard_perms)  # type: ignore[attr-defined]


def _families() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every signal found in the process, family by family, with its receivers."""
    families: dict[str, list[dict[str, Any]]] = {}
    for signal, spec in discovered():
        families.setdefault(spec.family, []).append(
            {
                "name": spec.name,
                "path": spec.path,
                "recorded": spec.recorded,
                "receivers": receivers_of(signal),
            }
        )
    return list(families.items())


def _admin_url() -> str | None:
    try:
        return reverse("admin:index")
    except NoReverseMatch:
        return None


def _page(request: HttpRequest, selected: StoredEvent | None = None) -> HttpResponse:
    filters = EventFilter.from_query(request.GET)
    if before := request.GET.get("before", "").strip():
        return _older(request, filters, before)
    # The newest id first, then the rows: anything stored in between is
    # backfilled over the socket, never missed.
    newest = reads.last_id()
    shown = _visible(request, StoredEvent.objects.filter(id__lte=newest))
    rows = reads.latest_of(filters.apply(shown), conf.get("MAX_ROWS"))
    context = {
        "filters": filters,
        "rows": rows,
        "last_id": newest,
        "requests": json.dumps(reads.requests_of(rows)),
        "servers": json.dumps(reads.servers(shown)),
        "selected": selected is not None,
        **(_detail_context(request, selected) if selected else {}),
    }
    htmx = HtmxDetails(request)  # the host need not install django-htmx's middleware
    if htmx and htmx.target == "history":
        # The page puts the filters in the address bar itself (dashboard.js): only
        # the filters that are set, a bookmarkable view.
        return render(request, "dashboard/index.html#history", context)
    families = _families()
    context.update(
        families=families,
        write_events=WRITE_EVENTS,
        counts=json.dumps(reads.counts(shown)),
        plumbing=reads.plumbing(shown),
        rates=rates_json(reads.rates(shown)),
        now=time.time(),
        senders=reads.senders(shown),
        max_rows=conf.get("MAX_ROWS"),
        rolled_back_badge=mark_safe(ROLLED_BACK_BADGE),  # for rows marked live (dashboard.js)
        zone=(zone := shown_zone()),  # the rows' (Row.time_text)
        zone_city=zone.rpartition("/")[2].replace("_", " "),  # "Buenos Aires", "UTC"
        test_events=TEST_EVENTS,
        family_names=[family for family, _ in families],
        grouped=request.GET.get("view") == "requests",
        admin_url=_admin_url(),
        links=conf.get("LINKS"),
        login_url=_login_url(),
    )
    return render(request, "dashboard/index.html", context)


def _older(request: HttpRequest, filters: EventFilter, before: str) -> HttpResponse:
    """"Load older": the filtered rows stored before the oldest the page holds,
    named by its history id or, for a row that came live, its key."""
    if before.isdigit():
        older_than = int(before)
    else:
        try:
            process, seq = parse_key(before)
        except ValueError:
            raise Http404("Not an event id or key.") from None
        found = StoredEvent.objects.filter(process=process, seq=seq).values_list("id", flat=True)
        # Not stored (yet, or pruned): everything up to the newest is older than it.
        older_than = found.first() or reads.last_id() + 1
    limit = conf.get("MAX_ROWS")
    older = _visible(request, StoredEvent.objects.filter(id__lt=older_than))
    rows = reads.latest_of(filters.apply(older), limit)
    context = {"rows": rows, "requests": json.dumps(reads.requests_of(rows)), "limit": limit}
    return render(request, "dashboard/index.html#older", context)


@viewer_required
def index(request: HttpRequest) -> HttpResponse:
    return _page(request)


TRACE_LINES = 400  # of a request's waterfall in the detail
TEST_EVENTS = 100  # the newest events a selection copies as a test


def _shown_in_trace(receiver: dict[str, Any]) -> bool:
    """A receiver given a line of its own in a request's waterfall: the project's own,
    or one that ran SQL or raised (Django's bookkeeping receivers are in each event's
    own detail)."""
    where = str(receiver.get("where", "")).rpartition(":")[0]
    return bool(receiver.get("queries") or receiver.get("raised")) or is_project_file(where)


def _detail_context(request: HttpRequest, event: StoredEvent) -> dict[str, Any]:
    trace: list[StoredEvent] = []
    request_info = None
    if event.request_id:
        trace = list(_visible(request).filter(request_id=event.request_id).order_by("id"))
        finished = next((e for e in trace if e.signal == "request_finished"), None)
        if finished is not None:
            request_info = {
                **finished.payload.get("request", {}),
                "status": finished.payload.get("status"),
                "duration_ms": finished.payload.get("duration_ms"),
            }
    # The request's events as a tree (each under the receiver that sent it) placed in
    # time; and this event's own tree: its receivers, with what each set off.
    waterfall = trace_tree(trace, _shown_in_trace)
    span_ms = place(waterfall, *request_bounds(trace))
    more = max(len(waterfall) - TRACE_LINES, 0)  # a bulk delete's request: thousands
    own = trace_tree(subtree(event, _visible(request)))
    place(own)
    cid, cause = event.detail.get("cid"), event.detail.get("cause")
    same_process = _visible(request).filter(process=event.process)
    not_run = event.detail.get("not_run") or []
    return {
        "event": event,
        "payload_json": to_json(in_described_order(event.payload), pretty=True),
        "trace": waterfall[:TRACE_LINES],
        "trace_more": more,
        "span_ms": span_ms,
        "own_tree": own if len(own) > 1 else [],
        "request_info": request_info,
        "caused_by": same_process.filter(detail__cid=cause).first() if cause else None,
        "caused": list(same_process.filter(detail__cause=cid).order_by("id")) if cid else [],
        "about": _about(event.payload),
        "zone": shown_zone(),  # its time's (in_zone)
        # Connected for an unrelated sender, as Django intends: folded away. (Events stored
        # before "other" was noted say only "connected for another sender".)
        "not_run": [r for r in not_run if not _for_other_senders(r)],
        "other_senders": [r for r in not_run if _for_other_senders(r)],
    }


def _for_other_senders(item: dict[str, Any]) -> bool:
    return bool(item.get("other")) or item.get("why") == ANOTHER_SENDER


def _about(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The object an event is about (its `instance`, else the first model argument, else
    the one object a write without signals was limited to)."""
    objects = payload.get("objects")
    only = objects if isinstance(objects, list) and len(objects) == 1 else []
    for value in (payload.get("instance"), *payload.values(), *only):
        if isinstance(value, dict) and "model" in value and value.get("pk") not in (None, "•••••"):
            return {"label": value["model"], "pk": str(value["pk"]), "str": value.get("str", "")}
    return None


def _stored(request: HttpRequest, key: str) -> StoredEvent:
    """The stored event with this key (core/keys.py) this user may see, or a 404."""
    try:
        process, seq = parse_key(key)
        return _visible(request).get(process=process, seq=seq)
    except (ValueError, StoredEvent.DoesNotExist):
        raise Http404("No such event: it may have been pruned, or not stored yet.") from None


@viewer_required
def detail(request: HttpRequest, key: str) -> HttpResponse:
    event = _stored(request, key)
    if HtmxDetails(request):
        return render(request, "dashboard/index.html#detail", _detail_context(request, event))
    return _page(request, selected=event)


def _filtered(request: HttpRequest) -> Iterator[StoredEvent]:
    filters = EventFilter.from_query(request.GET)
    return filters.apply(_visible(request).order_by("id")).iterator(chunk_size=1000)


def _export_name(request: HttpRequest, ext: str) -> str:
    return f"signals-{timezone.now():%Y%m%d-%H%M%S}.{ext}"


@viewer_required
def export_ndjson(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        export.ndjson_lines(_filtered(request)), content_type="application/x-ndjson"
    )
    response["Content-Disposition"] = f'attachment; filename="{_export_name(request, "ndjson")}"'
    return response


@viewer_required
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        export.csv_lines(_filtered(request)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_export_name(request, "csv")}"'
    return response


def socket(request: HttpRequest) -> HttpResponse:
    """The live socket's address, asked for over plain HTTP. The page asks it when its
    socket could not open: 401 (logged out) or 403 (not permitted) say why, as a
    refused handshake cannot. Otherwise 200, not 426 Upgrade Required: the page asks at
    every drop of its socket, and a 4xx is a warning in Django's request log and an
    error in the browser's console each time."""
    user = request.user
    if not user.is_authenticated:
        return HttpResponse("Logged out.\n", status=401, content_type="text/plain")
    if not (user.is_active and user.has_perm(access.VIEW)):
        return HttpResponse("Not permitted.\n", status=403, content_type="text/plain")
    return HttpResponse(
        "This is the dashboard's websocket; open the dashboard's page instead.\n",
        content_type="text/plain",
    )


@viewer_required
def as_test(request: HttpRequest, key: str) -> HttpResponse:
    """The event's request (or the event alone) as a pytest test (history/snippets.py)."""
    event = _stored(request, key)
    events = (
        list(_visible(request).filter(request_id=event.request_id).order_by("id"))
        if event.request_id
        else [event]
    )
    snippet = snippets.as_test(events, whole=bool(event.request_id))
    return HttpResponse(snippet, content_type="text/plain; charset=utf-8")


@viewer_required
def export_test(request: HttpRequest) -> HttpResponse:
    """The events the filters select (the newest TEST_EVENTS this user may see), oldest
    first, as a test."""
    filters = EventFilter.from_query(request.GET)
    events = list(filters.apply(_visible(request).order_by("-id"))[:TEST_EVENTS])[::-1]
    snippet = snippets.as_test(events, whole=False)
    return HttpResponse(snippet, content_type="text/plain; charset=utf-8")


@viewer_required
def object_timeline(request: HttpRequest, label: str, pk: str) -> HttpResponse:
    """Every event that touched one object, in order, with its changes chained."""
    needed = access.needs("", label)
    if needed and not access.may_see(request.dashboard_perms, [needed]):  # type: ignore[attr-defined]
        raise Http404("No such object, or not one you may view.")
    events = reads.about_object(label, pk, conf.get("MAX_ROWS"), _visible(request))
    return render(request, "dashboard/object.html", {
        "label": label, "pk": pk, "events": events, "admin_url": _admin_url(),
        "links": conf.get("LINKS"), "zone": shown_zone(),
        "rolled_back_badge": mark_safe(ROLLED_BACK_BADGE),
    })  # fmt: skip


@viewer_required
def diagnostics(request: HttpRequest) -> HttpResponse:
    """What may keep a receiver from running, for the whole project (dashboard/diagnostics.py);
    what the stored dispatches found, of the events this user may see."""
    return render(request, "dashboard/diagnostics.html", {
        "report": diagnostics_report(_visible(request)), "admin_url": _admin_url(),
        "links": conf.get("LINKS"),
    })  # fmt: skip
