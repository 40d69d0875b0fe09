"""Snapshots → the payload a person reads: JSON-safe, masked, truncated.

Secrets never leave the server: any key (kwarg, field, setting, dict key)
that looks like a password, secret, token, key, session or cookie is masked,
and so is a whole instance of a model named like one (its pk and str() are
the secret for e.g. sessions.Session). Inside any text, secrets are masked by
value too (`clean()`): credentials in URLs and DSNs, bearer tokens and
Authorization values, secret-named query parameters and dict entries. Invisible
and text-direction control characters are written out (`\u202e`), never obeyed.
All of it happens here, once, before an event is shown, stored or exported.
Escaping is the template's job.
"""

import logging
import operator
import re
import weakref
from collections.abc import Callable, Iterable
from datetime import date, datetime
from datetime import time as time_of_day
from functools import lru_cache
from types import FunctionType, MethodType
from typing import Any, TypeVar

from django.apps import apps
from django.db.models import Model

from dashboard import conf
from dashboard.core import senders
from dashboard.core.events import Event, InstanceSnapshot, RequestSnapshot
from dashboard.core.filters import is_plumbing
from dashboard.core.identity import ByIdentity
from dashboard.core.rows import Row, in_time_zone, moment, to_json

T = TypeVar("T")
logger = logging.getLogger("dashboard")

MASK = "•••••"
SECRET = re.compile(
    r"passw|pwd|secret|token|key|session|cookie|csrf|signature|salt|private",
    re.IGNORECASE,
)
MAX_ITEMS = 20
DATES = frozenset({datetime, date, time_of_day})  # shown as str(), like any other value


@lru_cache(maxsize=4096)  # names repeat: fields, kwargs, settings
def is_secret(name: str) -> bool:
    return bool(SECRET.search(name))


# Names secret as a query parameter or an entry inside a text, besides SECRET's
# (as a kwarg or field name, "code" is a product's code; in a query, OAuth's).
SECRET_PARAMS = frozenset({"auth", "authorization", "sig", "code"})


def _secret_param(name: str) -> bool:
    return is_secret(name) or name.lower() in SECRET_PARAMS

# -- masking by value ------------------------------------------------------------------

# scheme://user:password@host, scheme://:password@host, scheme://key@host (a DSN)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@'\"<>]+@")
# "Authorization: Bearer x", "authorization=x", "Bearer x" alone
_AUTHORIZATION = re.compile(
    r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(bearer|basic|digest|token)\s+)?[^\s'\",;&]+"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?!•)[a-z0-9._~+/\-]+=*")
# name=value in a query string or a message; 'name': 'value' in a repr
_PARAM = re.compile(r"(?<![\w.\-])([\w.\-]+)=([^&#\s'\"<>]+)")
_ENTRY = re.compile(r"""(['"])([\w.\-]+)\1(\s*:\s*)(['"])((?:(?!\4).){0,4096})\4""")


def clean(s: str) -> str:
    """`s` with every secret inside it masked (see the module's docstring). Text with
    none of the characters any of them needs, the common case, is returned as it is."""
    if not (
        "@" in s or "=" in s or "earer" in s or "EARER" in s or "uthoriz" in s
        or "UTHORIZ" in s or "':" in s or '":' in s
    ):  # fmt: skip
        return s
    if "@" in s:
        s = _USERINFO.sub(lambda m: f"{m[1]}{MASK}@", s)
    if "uthoriz" in s or "UTHORIZ" in s:
        s = _AUTHORIZATION.sub(lambda m: f"{m[1]}{m[2] + ' ' if m[2] else ''}{MASK}", s)
    if "earer" in s or "EARER" in s:
        s = _BEARER.sub(lambda m: f"{m[1]} {MASK}", s)
    if "=" in s:
        s = _PARAM.sub(lambda m: f"{m[1]}={MASK}" if _secret_param(m[1]) else m[0], s)
    if "':" in s or '":' in s:
        s = _ENTRY.sub(
            lambda m: f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{MASK}{m[4]}"
            if _secret_param(m[2])
            else m[0],
            s,
        )
    return s


def text(value: Any) -> str:
    limit = conf.get("VALUE_LIMIT")
    s = value if type(value) is str else str(value)
    if len(s) > limit:
        # Masked before it is cut (a credential cut in half would escape the mask);
        # what lies far past the cut is never shown, so never scanned.
        s = clean(s[: 2 * limit + 256])
        if len(s) > limit:
            s = s[: limit - 1] + "…"
        return storable(s)
    return storable(clean(s))


# C0 controls but tab, newline and carriage return, DEL, C1 controls, and the invisible or
# text-direction characters a name or path can hide behind: embeddings and
# overrides (U+202A-U+202E), isolates (U+2066-U+2069), zero-width characters and
# marks (U+200B-U+200F, U+2060-U+2064, U+061C, U+FEFF), line separators.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff]"
)


def _written_out(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def storable(s: str) -> str:
    """Text every database and the page take, and shows as it is: a NUL byte
    (PostgreSQL refuses it in text) and lone surrogates (no UTF-8 for them) are
    written out visibly, so one bad value costs that value, never its batch; other
    control characters and bidi or invisible ones are written out too (`\u202e`), so
    no value can reorder or hide what the page shows. Printable ASCII, the common
    case, is returned as it is."""
    if s.isascii():
        if s.isprintable():
            return s
        return _INVISIBLE.sub(_written_out, s)
    s = _INVISIBLE.sub(_written_out, s)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


def describe(raw: dict[str, Any]) -> dict[str, Any]:
    payload = {key: _describe(key, value) for key, value in raw.items()}
    # setting_changed: the value is as secret as the setting's name says.
    if isinstance(raw.get("setting"), str) and is_secret(raw["setting"]):
        payload["value"] = MASK
    return payload


def _describe(key: str, value: Any) -> Any:
    if is_secret(key):
        return MASK
    kind = type(value)  # the common cases first, by exact type: this runs per field
    if kind is str:
        return text(value)
    if value is None or kind is int or kind is bool or kind is float:
        return value
    if isinstance(value, InstanceSnapshot):
        return describe_instance(value)
    if isinstance(value, RequestSnapshot):
        return {"method": value.method, "path": text(value.path)}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        out = {text(k): _describe(str(k), v) for k, v in list(value.items())[:MAX_ITEMS]}
        # An object a write named (capture/filtered.py) of a secret-looking model: its pk
        # is as secret as describe_instance() holds it (a session's key).
        if "pk" in out and isinstance(label := value.get("model"), str) and is_secret(label):
            out["pk"] = MASK
        return out
    if isinstance(value, list):
        return [_describe(key, v) for v in value[:MAX_ITEMS]]
    return text(_local(value))


def _local(value: Any) -> Any:
    """A datetime in TIME_ZONE, as the table's times are: one read from the database (UTC)
    and one from a form (the zone's) beside each other read hours apart."""
    return in_time_zone(value) if isinstance(value, datetime) else value


def describe_instance(snap: InstanceSnapshot) -> dict[str, Any]:
    if is_secret(snap.label):
        return {"model": snap.label, "pk": MASK, "str": MASK, "fields": {}}
    limit = conf.get("VALUE_LIMIT")
    fields = {}
    # _describe() inlined for the common kinds: this runs for every field of
    # every saved instance, in the process (one GIL) that is saving.
    for name, value in snap.fields.items():
        if name[0] == "_":  # _state and other private attributes
            continue
        kind = type(value)
        if is_secret(name):
            value = MASK
        elif kind is str or kind in DATES:
            if kind is not str:
                value = str(_local(value))
            value = text(value) if len(value) > limit else storable(clean(value))
        elif not (value is None or kind is int or kind is bool or kind is float):
            value = _describe(name, value)
        fields[name] = value
    return {
        "model": snap.label,
        "pk": _describe("pk", snap.pk),
        "str": text(snap.text),
        "fields": fields,
    }


def summarize(
    payload: dict[str, Any],
    changed: list[str] | None = None,
    stamped: frozenset[str] = frozenset(),
) -> str:
    """One line for the table: the object, then what happened to it. `changed`: an
    update's changed fields, [] for a save that changed nothing (None: not known);
    `stamped`: those of its model that every save sets (auto_now)."""
    parts: list[str] = []
    # The object it is about: `instance` (model signals), else the first model
    # instance among its arguments (`user`, a host's own `book`, ...).
    for obj in (payload.get("instance"), *payload.values()):
        if isinstance(obj, dict) and "model" in obj and "str" in obj:
            # An instance not saved yet (its pre_save) has no pk: "new", not "#None".
            which = "(new)" if obj["pk"] is None else f"#{obj['pk']}"
            parts.append(f"{obj['model']} {which} “{obj['str']}”")
            break
    if isinstance(req := payload.get("request"), dict):
        parts.append(f"{req.get('method', '')} {req.get('path', '')}".strip())
    if "status" in payload:
        parts.append(f"{parts.pop() + ' ' if parts else ''}→ {payload['status']}")
    if "duration_ms" in payload:
        parts.append(f"{payload['duration_ms']} ms")
    if payload.get("created"):
        parts.append("created")
    if payload.get("raw") is True:  # pre_save/post_save of loaddata
        parts.append("raw: loaded from a fixture (loaddata), the model's save() not called")
    if payload.get("update_fields"):
        parts.append("fields " + ", ".join(map(str, payload["update_fields"])))
    if changed is not None:  # a save that changes nothing is worth seeing in the list
        if not changed:
            parts.append("nothing changed")
        elif stamped.issuperset(changed):
            parts.append(f"nothing changed but {', '.join(changed)} (auto_now)")
        else:
            parts.append(f"changed {', '.join(changed)}")
    if "action" in payload:
        pks = ", ".join(map(str, payload.get("pk_set") or []))
        parts.append(f"{payload['action']} {payload.get('model', '')} {{{pks}}}")
    if "setting" in payload:
        state = "enter" if payload.get("enter") else "exit"
        parts.append(f"{payload['setting']} = {payload.get('value')!s} ({state})")
    if isinstance(exc := payload.get("exception"), dict):
        parts.append(f"{exc['type']}: {exc['message']}")
    if isinstance(conn := payload.get("connection"), dict):
        parts.append(f"{conn.get('alias')} · {conn.get('vendor')}")
    if "rows" in payload and "note" in payload:  # a write that sent no signal
        if "verb" in payload:  # raw SQL through a cursor
            parts.append(f"{payload['verb']} {payload.get('table') or '?'}")
        fields = payload.get("fields")
        on = f" ({', '.join(map(str, fields))} set)" if fields else ""
        n = payload["rows"]
        count = "? rows" if n is None else f"{n} row{'' if n == 1 else 's'}"
        which = ""
        if isinstance(objects := payload.get("objects"), list):  # capture/filtered.py
            which = ", ".join(f"#{o.get('pk')}" for o in objects if isinstance(o, dict)) + ": "
        parts.append(f"{which}{count}{on}, {payload['note']}")
    if isinstance(creds := payload.get("credentials"), dict):
        parts.append(f"credentials {creds.get('username', '')}".strip())
    return text(" · ".join(parts)) if parts else "—"


def diff(
    before: dict[str, Any] | None, after: InstanceSnapshot | None, only: Any = None
) -> list[dict[str, Any]]:
    """Fields whose stored value differs from the saved one: [{field, old, new}]; of a
    save with update_fields (`only`), those it writes (others may differ in memory)."""
    if not before or after is None:
        return []
    changes = []
    for name, old in before.items():
        if only and name not in only and not (name.endswith("_id") and name[:-3] in only):
            continue  # "author" names the column "author_id" as well
        if name in after.fields and after.fields[name] != old:
            secret = is_secret(name) or is_secret(after.label)
            changes.append(
                {
                    "field": name,
                    "old": MASK if secret else _describe(name, old),
                    "new": MASK if secret else _describe(name, after.fields[name]),
                }
            )
    return changes


def auto_now(label: str) -> frozenset[str]:
    """A model's fields that every save sets (auto_now): that they changed says nothing."""
    try:
        return _auto_now(apps.get_model(label))
    except (LookupError, ValueError):  # not installed here (yet), or not "app.Model"
        return frozenset()


@lru_cache(maxsize=1024)
def _auto_now(model: type[Model]) -> frozenset[str]:
    return frozenset(
        f.attname for f in model._meta.concrete_fields if getattr(f, "auto_now", False)
    )


def describe_event(event: Event) -> Row:
    """Everything shown and stored of one event, computed once; then its snapshots go."""
    payload = describe(event.raw)
    instance = event.raw.get("instance")
    changes = diff(event.before, instance, event.raw.get("update_fields"))
    # An update's stored row was read (DIFFS): the table says what it changed.
    changed = None if event.before is None else [c["field"] for c in changes]
    stamped = (
        auto_now(instance.label) if changed and type(instance) is InstanceSnapshot else frozenset()
    )
    row = Row(
        process=event.process,
        seq=event.seq,
        time=moment(event.time),
        signal=event.signal,
        family=event.family,
        sender=storable(clean(event.sender)),
        summary=summarize(payload, changed, stamped),
        payload=payload,
        payload_json=to_json(payload),
        detail={
            "cid": event.cid,
            "cause": event.cause,
            "cause_receiver": event.cause_receiver,
            "ms": None if event.duration is None else round(event.duration * 1000, 3),
            "origin": event.origin,
            "diff": changes,
            **receivers_detail(event.named or name_receivers(event)),
        },
        request_id=event.request_id or "",
        rolled_back=event.rolled_back,
        plumbing=is_plumbing(event.signal, event.sender, payload),
    )
    event.described()
    return row


def describe_each(items: Iterable[Any]) -> tuple[list[Any], int]:
    """Each event described on its own (rows pass as they are): one that cannot be (a
    host's `__str__` that raises past the guards) costs itself, logged, never its
    neighbours. describe_event() empties each event it describes, so a batch described
    again after a failure half-way would store them empty. (rows, how many failed)."""
    rows, failed = [], 0
    for item in items:
        if isinstance(item, Event):
            try:
                item = describe_event(item)
            except Exception:
                failed += 1
                logger.exception("dashboard: could not describe a %s event", item.signal)
                continue
        rows.append(item)
    return rows, failed


def name_receivers(event: Event) -> dict[str, Any]:
    """Who listened (timed) and who did not run, named where the functions live (the
    capturing process): each timed one as (name, where, seconds, raised, queries,
    sql_seconds), made readable by receivers_detail() wherever it is described."""
    timings = event.timings
    return {
        "timed": [
            (*_names_of(t.receiver), t.seconds, t.raised, t.queries, t.sql_seconds)
            for t in timings
        ] if timings else [],
        "not_run": not_run(event) if event.receivers_then else [],
    }  # fmt: skip


def name_now(event: Event) -> None:
    """Name the receivers of a send that just ended (capture/dispatch.py), then let go of
    them: an event waits in the queue, and its transaction holds it until it ends, and
    neither must keep a receiver connected weakly (and whatever it belongs to) alive,
    let alone running for the next send as it would not without the dashboard. Never
    raises: a receiver that cannot be named costs the event its receivers only."""
    try:
        event.named = name_receivers(event)
    except Exception:
        if not _naming_failed:  # once: it would say so for every event
            _naming_failed.append(True)
            logger.exception("dashboard: could not name the receivers of a %s", event.signal)
        event.named = {"timed": [], "not_run": []}
    event.timings, event.receivers_then, event.sent_with = [], None, None


_naming_failed: list[bool] = []


def receivers_detail(named: dict[str, Any]) -> dict[str, Any]:
    """The detail's receivers (times in ms, rounded) and those that did not run."""
    return {"receivers": [timed_info(*t) for t in named["timed"]], "not_run": named["not_run"]}


NO_SENDER = id(None)  # how Django keys a receiver connected for every sender


def not_run(event: Event) -> list[dict[str, Any]]:
    """The signal's receivers that did not run for this send, and why; and those that
    ran more than once (the same function connected twice, without dispatch_uid).
    Those that did not run because they were connected for an unrelated sender, as
    Django intends, are marked "other" (the detail folds them away)."""
    receivers = event.receivers_then
    if not receivers:
        return []
    sent_with = event.sent_with
    seen = -1 if sent_with is None else len(sent_with)
    key = (event.signal, id(sent_with), seen, event.sender_id)
    connected = list(map(_LOOKUP_KEY, receivers))
    known = _not_run.get(key)
    if known is not None and known[0] == connected and not _any_gone(receivers):
        found = known[1]  # read only: shared by every event it is found for
    else:
        found = _not_run_for(event)
        if len(_not_run) >= NOT_RUN_AT_MOST:
            _not_run.clear()
        _not_run[key] = (connected, found)
    # By what it is, as Django tells receivers apart (dispatcher._make_id): a method
    # connected weakly comes back as a new bound method object each time. Never by the
    # receiver's own __eq__ or __hash__: the host's code (a value object, a MagicMock).
    if len(event.timings) < 2:  # none ran twice
        return found
    ran = _as_connected([t.receiver for t in event.timings], event.receivers_then)
    keys = [(id(f.__self__), id(f.__func__)) if type(f) is MethodType else id(f)
            for f in ran]  # _same_receiver(), inline: asked for most events  # fmt: skip
    if len(set(keys)) == len(keys):
        return found
    found = list(found)  # the shared list stays as it is
    for at, key in enumerate(keys):
        if (times := keys.count(key)) > 1 and key not in keys[:at]:
            found.append({**receiver_info(ran[at]), "why": (
                f"ran {times} times: connected more than once (give connect() a "
                "dispatch_uid)")})  # fmt: skip
    return found


def _same_receiver(func: Any) -> Any:
    """What makes two receivers the same one, as Django's _make_id() says."""
    if type(func) is MethodType:
        return id(func.__self__), id(func.__func__)
    return id(func)


# not_run()'s receivers that did not run (gone, or connected for other senders), per
# (signal, its set of senders seen and how many it holds, sender): the same for every send
# while the signal's receivers stay as they are. Each project model's own receivers are
# connected for it, so every save skips those of all other models, naming each again:
# 0.6 µs a receiver. Kept with the receivers' lookup keys, Django's own ids of each
# (receiver, sender) pair, compared as numbers: nothing of the host's is held or run (its
# __eq__), and a receiver connected or disconnected since changes them. A weakly connected
# receiver collected since (Django takes its entry out during this very send) is looked for
# on each send, and found anew, as "(gone)". Read only, as what _for_another_sender() keeps.
_not_run: dict[tuple[str, int, int, int], tuple[list[Any], list[dict[str, Any]]]] = {}
NOT_RUN_AT_MOST = 256  # senders are unbounded (a signal sent with ever new instances)
_LOOKUP_KEY = operator.itemgetter(0)  # of an entry of Signal.receivers: (receiver, sender)


def _any_gone(receivers: list[Any]) -> bool:
    """Whether a weakly connected receiver among them was collected."""
    return any(type(ref) in _WEAK and ref() is None for _, ref, _ in receivers)


_WEAK = (weakref.ReferenceType, weakref.WeakMethod)


def _not_run_for(event: Event) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    sent: Any = _UNKNOWN  # the model sent for, looked up once, if any receiver needs it
    for (receiver_key, sender_key), ref, _ in event.receivers_then or ():
        func = ref() if isinstance(ref, weakref.ReferenceType) else ref
        if func is None and isinstance(receiver_key, tuple):
            continue  # a method whose object was collected: it went with it, as designed
        if func is None:
            found.append({"name": "(gone)", "where": "", "why": (
                "garbage-collected: it was connected by a weak reference and nothing else "
                "held it (a function defined inside another?); define it at module level, "
                "or connect it with weak=False")})  # fmt: skip
        elif sender_key not in (NO_SENDER, event.sender_id):
            if sent is _UNKNOWN:
                sent = _model_sent_for(event)
            found.append(_for_another_sender(func, sender_key, sent, event))
    return found


_UNKNOWN = object()


def _model_sent_for(event: Event) -> type[Model] | None:
    try:
        return senders.model_for(event.sender_id)
    except Exception:  # Django's registry changing under us (a model registering)
        return None


def _for_another_sender(
    func: Any, connected_key: int, sent: type[Model] | None, event: Event
) -> dict[str, Any]:
    """Why a receiver connected for another sender did not run. The same dict for every
    event that skipped it for the same reason (read only, never changed: a batch pickles
    it once), kept per (signal, class connected for, model sent for): never by a sender's
    id (receivers connected per instance, a signal sent with ever new ones)."""
    sent_with = event.sent_with
    never_sent = (
        sent_with is not None
        and len(sent_with) < senders.MAX_SENDERS  # full since: not known
        and connected_key not in sent_with
    )
    try:
        connected = senders.connected_class(connected_key, sent)
        reasons = _cached(_another_sender, func, lambda _: {})
        key = (event.signal, connected, sent, never_sent)
        found = reasons.get(key)
        if found is None:
            why, other = senders.why_not(event.signal, connected, sent, never_sent)
            found = reasons[key] = {**receiver_info(func), "why": why}
            if other:
                found["other"] = True
        return found
    except Exception:  # never lose the event for a reason: the plain one
        if not _reason_failed:  # once: it would say so for every event
            _reason_failed.append(True)
            logger.exception("dashboard: could not say why a receiver did not run")
        return {**receiver_info(func), "why": senders.ANOTHER_SENDER, "other": True}


_reason_failed: list[bool] = []


def receiver_info(
    func: Any,
    seconds: float | None = None,
    raised: bool = False,
    queries: int = 0,
    sql_seconds: float = 0.0,
) -> dict[str, Any]:
    """A receiver as the dashboard names it: dotted name, file:line, its time and its
    own SQL (queries, and their time)."""
    return timed_info(*_names_of(func), seconds, raised, queries, sql_seconds)


def _names_of(func: Any) -> tuple[str, str]:
    return _cached(_names, unwrapped(func), _named)


def unwrapped(func: Any) -> Any:
    """The receiver itself, past wrappers made with functools.wraps: sentry-sdk's signal
    spans wrap every receiver anew on each send, so it was named by a new wrapper every
    time (never cached) and pointed into sentry-sdk's file."""
    if type(func) is FunctionType and "__wrapped__" not in func.__dict__:
        return func  # most receivers: a function, nothing to look through
    for _ in range(UNWRAP_AT_MOST):
        inner = wrapped_of(func)
        if inner is None:
            break
        func = inner
    return func


def wrapped_of(func: Any) -> Any:
    """What functools.wraps says func wraps, or None: read where wraps() puts it (the
    function's, or a callable object's, own __dict__; a bound method's function's), so
    that no __getattr__ of the host's runs (a MagicMock would make one up)."""
    if type(func) is MethodType:
        func = func.__func__
    try:
        own = object.__getattribute__(func, "__dict__")
    except AttributeError:  # no __dict__ (a builtin): wraps nothing
        return None
    return own.get("__wrapped__") if type(own) is dict else None


UNWRAP_AT_MOST = 10  # wrappers looked through, at most (a cycle of __wrapped__ ends there)


def _as_connected(ran: list[Any], receivers_then: list[Any]) -> list[Any]:
    """Each receiver that ran, as it was connected: past the functools.wraps wrappers that
    sentry-sdk makes for each run (a function connected twice was never seen to run
    twice), and no further (two receivers that wrap one function, or two instances'
    methods, whose __wrapped__ is their function's, are two)."""
    for func in ran:
        if type(func) is FunctionType:  # most: wrapped_of() inline
            if "__wrapped__" in func.__dict__:
                break
        elif wrapped_of(func) is not None:
            break
    else:
        return ran
    connected = [ref() if isinstance(ref, weakref.ReferenceType) else ref
                 for _, ref, _ in receivers_then]  # fmt: skip
    return [_connected_one(func, connected) for func in ran]


def _connected_one(func: Any, connected: list[Any]) -> Any:
    connected_as = {_same_receiver(c) for c in connected}
    inner = func
    for _ in range(UNWRAP_AT_MOST):
        if _same_receiver(inner) in connected_as:
            return inner
        inner = wrapped_of(inner)
        if inner is None:
            break
    return func


# Per receiver, asked for every event it ran for. By the function (a bound method is a
# new object each time it is looked up), for its life only: holding a receiver connected
# weakly would keep it, and whatever it belongs to, alive and running. By its id, never
# hashed: a receiver may be an object of the host's whose __hash__ is its own code (a
# value object, a MagicMock that records the call).
_names: ByIdentity[tuple[str, str]] = ByIdentity()
_another_sender: ByIdentity[dict[Any, dict[str, Any]]] = ByIdentity()


def _cached(cache: ByIdentity[T], func: Any, make: Callable[[Any], T]) -> T:
    owner = func.__func__ if type(func) is MethodType else func  # no host __getattr__ asked
    found = cache.get(id(owner))
    if found is None:  # cannot be weakly referenced: made each time
        found = cache.put(owner, make(func))
    return found


def timed_info(
    name: str,
    where: str,
    seconds: float | None = None,
    raised: bool = False,
    queries: int = 0,
    sql_seconds: float = 0.0,
) -> dict[str, Any]:
    """receiver_info() for a receiver already named (where it lived: the capturing process)."""
    info: dict[str, Any] = {"name": name, "where": where}
    if seconds is not None:
        info["ms"] = round(seconds * 1000, 3)
        info["queries"] = queries
        info["sql_ms"] = round(sql_seconds * 1000, 3)
    if raised:
        info["raised"] = True
    return info


def _named(func: Any) -> tuple[str, str]:
    code = getattr(func, "__code__", None)
    return (
        f"{func.__module__}.{getattr(func, '__qualname__', type(func).__qualname__)}",
        f"{code.co_filename}:{code.co_firstlineno}" if code else "",
    )
