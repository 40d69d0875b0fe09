"""What a create costs with something else listening, measured beside the dashboard.

- `floor`: Django's own dispatch with one no-op receiver per signal the
  dashboard watches (for every sender): the least any receiver-based tool costs.
- `reference`: a lean recorder of our own, no pipeline: the same record as
  the dashboard's capture (sender label, str() and concrete field values,
  the other kwargs, the project's call site, every receiver's time through a
  wrapped `Signal._live_receivers`, the events of an open transaction kept
  for rollback, the request id, pre_save's read of the stored row), appended
  to a deque. What capture can cost when nothing else is done.
- `piped`: the reference, drained every 50 ms by a thread of its own that
  names the receivers, drops the instances' private state (Django's `_state`),
  pickles what came and writes it to a pipe, read and discarded by another
  process: the off-process design the issue proposed (it measured 1.14x / 1.13x
  elsewhere), with nothing done at the other end. Its last batch is written
  inside the timed window (`settle`).
- `sentry`: sentry-sdk with `DjangoIntegration(signals_spans=True)`,
  `traces_sample_rate=1.0`, every run inside a transaction, a transport that
  discards (installed by `make bench` from requirements-bench.txt; skipped
  when absent). Its patches cannot be removed: "off" for it is its client
  unset, which leaves Django's dispatch as it was but for one check per send.

- `busy`: nothing listening (the dashboard's hook off), while another process
  spins pure Python on the machine's other core: what any work done beside the
  host, in a sidecar or anywhere, costs it on this kind of machine (the cores
  share caches: a busy neighbour slows the host's own CPU time).

Each is on only for its own runs; the dashboard's hook is off meanwhile.
"""

import contextlib
import contextvars
import functools
import pickle
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

ROW_CAP = 100_000


def watched() -> list[tuple[Any, Any]]:
    """(signal, spec) of every signal the dashboard records."""
    from dashboard.capture import signals

    return [(sig, spec) for sig, spec in signals.discovered() if spec.recorded]


def _noop(sender: Any, **kwargs: Any) -> None:
    return None


@contextlib.contextmanager
def floor() -> Iterator[None]:
    sigs = [sig for sig, _ in watched()]
    for sig in sigs:
        sig.connect(_noop, weak=False, dispatch_uid="bench-floor")
    try:
        yield
    finally:
        for sig in sigs:
            sig.disconnect(dispatch_uid="bench-floor")


@contextlib.contextmanager
def busy() -> Iterator[None]:
    """Another process spinning pure Python meanwhile, stopped by its PID after."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: sum(range(1000))"])
    time.sleep(0.1)  # running before the timed creates start
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


class Reference:
    """The lean recorder (see the module's docstring)."""

    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
        "ref_request", default=None
    )

    def __init__(self) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=ROW_CAP)
        self.open: dict[str, list[dict[str, Any]]] = {}
        self.sites: dict[tuple[Any, int], str] = {}
        self.mine: dict[Any, bool] = {}
        self.names: dict[Any, str] = {}

    def origin(self) -> str | None:
        from dashboard.capture.origin import is_project_file

        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            mine = self.mine.get(code)
            if mine is None:
                mine = self.mine[code] = is_project_file(code.co_filename)
            if mine:
                site = (code, frame.f_lasti)
                where = self.sites.get(site)
                if where is None:
                    where = self.sites[site] = f"{code.co_filename}:{frame.f_lineno}"
                return where
            frame = frame.f_back
        return None

    def receiver(self, signal: Any, sender: Any, **kwargs: Any) -> None:
        from django.db import connections
        from django.db.models import Model
        from django.db.models.signals import pre_save

        instance = kwargs.get("instance")
        record: dict[str, Any] = {
            "signal": self.names.get(signal, ""),
            "sender": sender._meta.label if isinstance(sender, type) and issubclass(
                sender, Model) else type(sender).__qualname__,
            "time": time.time(),
            "request": self.request_id.get(),
            "origin": self.origin(),
            # As the dashboard keeps them: not the instance (below), nor the Signal itself.
            "kwargs": {k: v for k, v in kwargs.items() if k not in ("instance", "signal")},
            "receivers": [],
        }
        if isinstance(instance, Model):
            record["str"] = str(instance)
            record["fields"] = dict(instance.__dict__)
            if signal is pre_save and not instance._state.adding and instance.pk is not None:
                fields = [f.attname for f in instance._meta.concrete_fields]
                record["before"] = (
                    type(instance)._base_manager.filter(pk=instance.pk).values(*fields).first()
                )
        connection = connections[kwargs.get("using") or "default"]
        if connection.in_atomic_block:
            self.open.setdefault(connection.alias, []).append(record)
        self.records.append(record)
        self.last = record

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from django.dispatch import Signal

        original = Signal._live_receivers
        reference = self

        @functools.wraps(original)
        def live_receivers(signal: Signal, sender: Any) -> Any:
            sync, async_ = original(signal, sender)
            record = getattr(reference, "last", None)

            def timed(func: Any) -> Any:
                @functools.wraps(func)
                def run(*args: Any, **kwargs: Any) -> Any:
                    start = time.perf_counter()
                    try:
                        return func(*args, **kwargs)
                    finally:
                        if record is not None:
                            record["receivers"].append((func, time.perf_counter() - start))
                return run

            return [timed(f) for f in sync], async_

        for spec_signal, spec in watched():
            self.names[spec_signal] = spec.name
            spec_signal.connect(self.receiver, weak=False, dispatch_uid="bench-reference")
        Signal._live_receivers = live_receivers
        try:
            yield
        finally:
            Signal._live_receivers = original
            for spec_signal in self.names:
                spec_signal.disconnect(dispatch_uid="bench-reference")
            self.records.clear()
            self.open.clear()


def reference() -> contextlib.AbstractContextManager[None]:
    return Reference().installed()


PIPED_WINDOW = 0.05  # seconds between the piped reference's drains


class Piped(Reference):
    """The reference, piped to another process (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = deque()  # drained: unbounded
        self.lock = threading.Lock()  # one drain at a time: the thread's, or settle()'s
        self.unpicklable = 0  # records of batches that would not pickle (none seen)

    def drain(self, out: Any) -> None:
        """What came since the last drain, made portable, pickled, written to the pipe."""
        with self.lock:
            batch = []
            while self.records:
                record = dict(self.records.popleft())
                if (fields := record.get("fields")) is not None:
                    record["fields"] = {k: v for k, v in fields.items() if k[0] != "_"}
                record["receivers"] = [(f"{f.__module__}.{f.__qualname__}", t)
                                       for f, t in record["receivers"]]  # fmt: skip
                batch.append(record)
            if batch:
                try:
                    data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
                except Exception:  # a value that will not pickle: counted, not fatal
                    self.unpicklable += len(batch)
                    return
                out.write(data)
                out.flush()

    @contextlib.contextmanager
    def piped(self) -> Iterator[Callable[[], None]]:
        reader = subprocess.Popen(
            [sys.executable, "-c", "import sys\nwhile sys.stdin.buffer.read(1 << 16): pass"],
            stdin=subprocess.PIPE,
        )
        out = reader.stdin
        stop = threading.Event()

        def drain_every_window() -> None:
            while not stop.wait(PIPED_WINDOW):
                self.drain(out)

        drainer = threading.Thread(target=drain_every_window, name="bench-piped", daemon=True)
        with self.installed():
            drainer.start()
            try:
                yield lambda: self.drain(out)  # settle: the last batch, inside the timing
            finally:
                stop.set()
                drainer.join()
                out.close()
                reader.wait()


def piped() -> contextlib.AbstractContextManager[Callable[[], None]]:
    return Piped().piped()


def sentry_available() -> bool:
    try:
        import sentry_sdk  # noqa: F401
    except ImportError:
        return False
    return True


_sentry_ready = False


@contextlib.contextmanager
def sentry() -> Iterator[None]:
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.transport import Transport

    class Discard(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            return None

    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=Discard,
        traces_sample_rate=1.0,
        integrations=[DjangoIntegration(signals_spans=True)],
        default_integrations=False,
    )
    try:
        with sentry_sdk.start_transaction(op="bench", name="creates"):
            yield
    finally:
        sentry_sdk.get_global_scope().set_client(None)
        sentry_sdk.get_isolation_scope().set_client(None)
        sentry_sdk.get_current_scope().set_client(None)
