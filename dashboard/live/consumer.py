"""The websocket every open dashboard holds: for its viewers, forwards live frames as they are.

On every open (the first and each reconnect) the page sends
`{"type": "resume", "after": <history id>, "seen": {process: seq}, "filters": {...}}`:
the newest stored id its history covers, and per process the newest event it
holds. It gets exactly what it missed, once, in order, before anything newer:

- live frames forwarded before the resume is answered are left out of the backfill;
- live frames that came before it (and other processes' of the second before the
  socket opened) are held, and forwarded after the backfill unless their events are
  stored by then (another process's frame may leave before they are stored);
- live frames whose events the backfill already held are not forwarded;
- events this process sent before the socket joined are stored before the backfill reads.

Frames reach the socket from live/fanout.py, never through a layer
channel of its own; while a resume is answered they wait, so the backfill
always goes out before anything newer.

The resume is the one message a page sends, once per socket: at most
MESSAGE_AT_MOST characters and PROCESSES_AT_MOST processes in `seen`, read in
time linear in its size; anything else closes the socket with 4400 and one log
line. A socket that ends, cleanly or by an error, leaves the fan-out at once.

Access follows the user: the socket needs the dashboard's permission to open,
and every ACCESS_RECHECK seconds its session is read again; it closes with 4401
once the user is logged out, the session flushed or expired, or the account
deactivated, and with 4403 once the permission is gone (the page then says so and
offers to log in). What the user may see is re-read then too: a frame holding
events the user may not see all of (its message names the permissions they
need, history/access.py) is read from the history instead, filtered there.
"""

import asyncio
import json
import logging
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user

from dashboard import conf
from dashboard.core import keys
from dashboard.core.filters import EventFilter
from dashboard.core.render import render_frame
from dashboard.history import access, reads
from dashboard.live.daphne import SCOPE_KEY, Frame
from dashboard.live.fanout import fanout
from dashboard.live.handoff import handoff
from dashboard.sidecar.link import link

logger = logging.getLogger("dashboard")


class EventsConsumer(AsyncWebsocketConsumer):
    # No layer channel per socket: an alias that is not configured gives none
    # (channels.layers.get_channel_layer). The fanout delivers instead.
    channel_layer_alias = "dashboard-sockets-use-the-fanout"
    filling: asyncio.Task[None] | None = None  # a gap being read from the history
    watching: asyncio.Task[None] | None = None  # the access re-check
    resumed = False  # the page's one resume message came
    perms: frozenset[str] | None = None  # what the user may see (history/access.py)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """However the socket ends (a close, or an error in this consumer), it
        leaves the fan-out at once: no frame is built for it after that."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.leave()

    def leave(self) -> None:
        fanout.unsubscribe(self)
        for task in (self.filling, self.watching):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not await database_sync_to_async(_may_view)(user):
            await self.close()  # before accept: the handshake is refused (403)
            return
        self.user_pk = user.pk
        self.perms = await database_sync_to_async(access.allowed)(user)
        # Per process, the newest seq this socket holds: forwarded live, or backfilled.
        self.seen: dict[str, int] = {}
        self._gap_tries: dict[str, int] = {}  # per process: reads of a gap not all stored
        # daphne's socket, to write frames framed once for all (sockets.py); or None.
        self.socket = self.scope.get(SCOPE_KEY)
        handoff.bind_running_loop()
        link.warm()
        # Frames held back, in order, while the page has not been answered yet (from
        # the connect until its first resume is answered) or a gap is being filled;
        # None while frames go straight through. From the open: other processes' of the
        # last second too, whose events may not be stored yet (fanout.recent()).
        self.held: list[Frame] | None = fanout.recent()
        fanout.subscribe(self)  # holds what comes from now on (see `held`)
        await fanout.listening()  # and hears other processes' frames before it opens
        await self.accept()
        self.watching = asyncio.ensure_future(self.recheck())

    async def recheck(self) -> None:
        """Every ACCESS_RECHECK seconds: may this socket's user still see the dashboard?"""
        while True:
            await asyncio.sleep(conf.get("ACCESS_RECHECK"))
            key = getattr(self.scope.get("session"), "session_key", None) or ""
            if (answer := await shared_check(key, self.user_pk)) is None:
                continue  # could not tell (the database restarting): the next look decides
            code, self.perms = answer
            if code:
                logger.info("dashboard: closed the socket of user %s (%d)", self.user_pk, code)
                self.leave()
                await self.close(code=code)
                return

    async def disconnect(self, code: int) -> None:
        self.leave()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            if self.resumed:
                raise BadMessage("a second message: a page resumes once per socket")
            after, seen, filters = parse_resume(text_data)
        except BadMessage as exc:
            user = self.scope.get("user")
            logger.warning(
                "dashboard: closed the socket of %s (4400): %s",
                getattr(user, "pk", None), exc,
            )  # fmt: skip
            self.leave()
            await self.close(code=BAD_MESSAGE)
            return
        self.resumed = True
        await self.resume(after, seen, filters)

    async def resume(self, after: int, seen: dict[str, int], filters: EventFilter) -> None:
        # Frames held since the open (and other processes' of the second before it) stay
        # held, and go after the backfill: those whose events are stored by then are
        # skipped (forward). Another process's frame leaves before its events are
        # stored, so the backfill may not hold them yet, and no later frame of that
        # process may come to fill the gap.
        if self.held is None:
            self.held = []
        try:
            # What this process sent before the socket joined is readable now: up to
            # `stored`, its own events come from the history, later ones live.
            stored = await handoff.caught_up()
            for process, seq in self.seen.items():  # forwarded while the page was asking
                seen[process] = max(seq, seen.get(process, 0))
            # Other processes' frames held: what of them is stored is on the page or in the
            # backfill (read after it), or was left out of both on purpose; only frames of
            # events not stored yet go on.
            others = {f.message.get("process") for f in self.held} - {None, keys.process()}
            stored_of_others, missed = await database_sync_to_async(_read_resume)(
                others, after, filters, seen, conf.get("MAX_ROWS"), self.perms
            )
            for process, seq in [*stored_of_others.items(), *missed.highest.items()]:
                self.seen[process] = max(seq, self.seen.get(process, 0))
            for process, seq in [*seen.items(), (keys.process(), stored)]:
                self.seen[process] = max(seq, self.seen.get(process, 0))
            if missed.counts:
                frame = render_frame(
                    missed.rows,
                    missed.counts,
                    history_id=missed.newest,
                    plumbing=missed.plumbing,
                    rates=missed.rates,
                )
                await self.send(text_data=frame)
        except Exception:
            await self.release()  # what was held goes on, though the backfill failed
            raise
        # Not in a `finally`: cancelled (the socket left) or closed (its loop ended), it
        # has nothing to release and must not wait again on its way out.
        await self.release()

    async def deliver(self, frame: Frame) -> None:
        """A frame from the fanout: forwarded at once, or held (see `held`). Never
        waits on the database: the fanout hands the frame to every socket in turn."""
        if self.held is not None:
            if len(self.held) >= HELD_AT_MOST:  # a page that never asks: let it reconnect
                self.held = None
                await self.close(code=1011)  # the page reconnects and resumes
                return
            self.held.append(frame)
            return
        process, first = frame.message.get("process"), frame.message.get("first_seq")
        if process is not None and first is not None and self._gap(process, first):
            # Events of that process between what the page holds and this frame are
            # not here (sent before this socket joined, stored since or soon): they
            # are read from the history first, the frames after them held meanwhile.
            self.held = [frame]
            self.filling = asyncio.ensure_future(self.fill_gap(process, first))
            return
        await self.forward(frame)

    def _gap(self, process: str, first: int) -> bool:
        """Events of a process the page holds are missing before this frame. (Of a
        process it never saw, it holds nothing to be contiguous with.)"""
        known = self.seen.get(process)
        return known is not None and first > known + 1

    async def fill_gap(self, process: str, first: int, last: int | None = None) -> None:
        """Read what the page misses of a process from the history: the gap before a
        frame (`first`), or with `last` the frame itself, filtered to what this user
        may see; then forward what was held meanwhile."""
        known = self.seen.get(process, first - 1)
        before = first if last is None else last + 1
        try:
            missed = await database_sync_to_async(reads.between)(
                process, known, before, conf.get("MAX_ROWS"), perms=self.perms
            )
        except Exception:  # the history unreadable (a restart): the live view goes on
            logger.warning("dashboard: could not read %s's missed events", process,
                           exc_info=True)  # fmt: skip
            missed = None
        finally:
            # Cancelled (the socket left) or closed (its loop ended): nothing to release,
            # and no await on the way out (a closed coroutine must not wait again).
            self.filling = None
        if missed is not None and missed.counts:
            await self.send(text_data=render_frame(
                missed.rows, missed.counts, plumbing=missed.plumbing
            ))  # fmt: skip
        if missed is not None and (highest := missed.highest.get(process)):
            self.seen[process] = max(self.seen.get(process, 0), highest)
        if last is not None:  # the whole frame is accounted for, shown or not
            self.seen[process] = max(self.seen.get(process, 0), last)
        elif self.seen.get(process, 0) < first - 1:  # some of the gap is not stored yet
            # The frame finds the gap again and this reads it again (each read waits up
            # to a second), GAP_TRIES times; then what is still not stored is taken as
            # never to be (counted unstored) and the frame goes on. Unbounded, a page
            # froze, every later frame held, for as long as the events went unstored.
            tries = self._gap_tries[process] = self._gap_tries.get(process, 0) + 1
            if tries >= GAP_TRIES:
                self.seen[process] = first - 1
        if self.seen.get(process, 0) >= first - 1:
            self._gap_tries.pop(process, None)
        await self.release()

    async def release(self) -> None:
        """Forward what was held, in order; a gap on the way holds again."""
        held, self.held = self.held or [], None
        while held:
            frame = held.pop(0)
            if self.held is not None:  # a gap is being filled again: keep the order
                self.held.extend([frame, *held])
                return
            await self.deliver(frame)

    async def forward(self, frame: Frame) -> None:
        message = frame.message
        process, first, last = (message.get(k) for k in ("process", "first_seq", "last_seq"))
        if process is not None and first is not None:
            holds = self.seen.get(process, 0)
            if (first if last is None else last) <= holds:
                return  # the backfill held these already
            if first <= holds or not access.may_see(self.perms, message.get("perms", ())):
                # Held in part (a frame from the history that spans what the backfill
                # read), or some of its rows are not for this user: the rest of the frame
                # from the history, filtered there; later frames wait meanwhile, in order.
                self.held = []
                self.filling = asyncio.ensure_future(self.fill_gap(process, first, last))
                return
            self.seen[process] = last
        # Rendered once (live/frames.py); no per-client work here.
        if self.socket is None or not frame.send_to(self.socket):
            await self.send(text_data=frame.html)


def _read_resume(
    others: set[str], after: int, filters: EventFilter, seen: dict[str, int], limit: int,
    perms: frozenset[str] | None,
) -> tuple[dict[str, int], reads.Backfill]:
    """What of these processes is stored, then the backfill: in that order, so an event
    stored in between is in the backfill rather than skipped by both."""
    stored = reads.highest(others) if others else {}
    return stored, reads.backfill(after, filters, seen, limit, perms)


HELD_AT_MOST = 2000  # frames held for a page that has not asked to resume
GAP_TRIES = 5  # reads of a gap's events (a second each) before its frame goes on without them
MESSAGE_AT_MOST = 8192  # characters of the resume message
PROCESSES_AT_MOST = 64  # processes in its `seen` (the page sends its newest 64)
ID_AT_MOST = 2**63 - 1  # ids and sequence numbers are 64-bit
# Close codes: a message that is not one resume; the session no longer holds an
# active user; the user lost the dashboard's permission. (htmx reconnects after none.)
BAD_MESSAGE, LOGGED_OUT, NOT_PERMITTED = 4400, 4401, 4403


def _may_view(user: Any) -> bool:
    return bool(user.is_active and user.has_perm(access.VIEW))


Access = tuple[int, frozenset[str] | None]
# Per session key, the latest re-check (when, its answer): the sockets of one session
# (tabs, dashboards) share one, so 300 open sockets are not 300 queries a period.
_checks: dict[tuple[str, Any], tuple[float, asyncio.Future[Access | None]]] = {}


async def shared_check(session_key: str, user_pk: Any) -> Access | None:
    """access_now() of this session, asked at most once per half ACCESS_RECHECK; None
    when it could not be told (said in the log once)."""
    loop = asyncio.get_running_loop()
    now, fresh_for = loop.time(), conf.get("ACCESS_RECHECK") / 2
    found = _checks.get((session_key, user_pk))
    if found is not None and now - found[0] < fresh_for and found[1].get_loop() is loop:
        return await asyncio.shield(found[1])
    for k, (when, _) in list(_checks.items()):  # forget the stale ones
        if now - when >= fresh_for:
            del _checks[k]
    answer = asyncio.ensure_future(_checked(session_key, user_pk))
    _checks[(session_key, user_pk)] = (now, answer)
    return await asyncio.shield(answer)


async def _checked(session_key: str, user_pk: Any) -> Access | None:
    try:
        return await database_sync_to_async(access_now)(session_key, user_pk)
    except Exception:
        logger.warning("dashboard: could not re-check a socket's access", exc_info=True)
        return None


def access_now(session_key: str, user_pk: Any) -> Access:
    """(0, what the user may see), or the close code: 4401 when the session no longer
    holds this active user (logged out, flushed, expired, password changed,
    deactivated), 4403 when the user lost the dashboard's permission."""
    if not session_key:
        return LOGGED_OUT, None
    # Read anew, not the copy the socket opened with; as a request would.
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=session))  # type: ignore[arg-type]
    if not user.is_authenticated or user.pk != user_pk or not user.is_active:
        return LOGGED_OUT, None
    if not user.has_perm(access.VIEW):
        return NOT_PERMITTED, None
    return 0, access.allowed(user)


class BadMessage(ValueError):
    pass


def _count(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= ID_AT_MOST:
        raise BadMessage(f"{what} must be a whole number from 0 to 2**63 - 1")
    return value


def parse_resume(text: str | None) -> tuple[int, dict[str, int], EventFilter]:
    """The page's resume message, checked for size and shape in one pass over it
    (linear in its size, which is bounded); BadMessage says what is wrong."""
    if text is None:
        raise BadMessage("not a text message")
    if len(text) > MESSAGE_AT_MOST:
        raise BadMessage(f"{len(text)} characters, more than {MESSAGE_AT_MOST}")
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise BadMessage(f"not JSON ({exc})") from None
    if not isinstance(message, dict) or message.get("type") != "resume":
        raise BadMessage("not a resume message")
    after = _count(message.get("after") or 0, "'after'")
    seen = message.get("seen") or {}
    if not isinstance(seen, dict) or len(seen) > PROCESSES_AT_MOST:
        raise BadMessage(f"'seen' must map at most {PROCESSES_AT_MOST} processes to a seq")
    for process, seq in seen.items():
        _count(seq, f"'seen'[{process[:100]!r}]")
    filters = message.get("filters") or {}
    if not isinstance(filters, dict) or not all(
        isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))
        for v in filters.values()
    ):
        raise BadMessage("'filters' must map names to strings or lists of strings")
    return after, seen, EventFilter.from_query(filters)

