"""Subprocesses the benchmark starts: free ports, readiness, CPU time, and stopping by PID."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


class CpuMeter:
    """CPU time of a process over a wall-clock interval, as % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0 = cpu_seconds(pid)
        self.wall0 = time.monotonic()

    def percent(self) -> float:
        wall = time.monotonic() - self.wall0
        return 100 * (cpu_seconds(self.pid) - self.cpu0) / wall if wall > 0 else 0.0


def settle(pid: int, below: float = 10.0, window: float = 0.2, limit: float = 5.0) -> float:
    """Wait (at most `limit` s) until the process uses < `below` % of a core; return waited s."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        meter = CpuMeter(pid)
        time.sleep(window)
        if meter.percent() < below:
            break
    return time.monotonic() - start


def children(pid: int) -> list[int]:
    """The PIDs whose parent is `pid` (a server's sidecar), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # the 4th field: the parent
            found.append(int(entry.name))
    return found


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout} s")


def bench_env(db_path: Path, window: float | None = None) -> dict[str, str]:
    """The project's settings on the bench database (the in-memory layer, DEBUG off)."""
    drop = ("REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE", "BENCH_BATCH_WINDOW")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if window is not None:
        env["BENCH_BATCH_WINDOW"] = str(window)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings" if window is None else "bench.settings",
        DATABASE_URL=f"sqlite:///{db_path}",
        DJANGO_DEBUG="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 5.0) -> None:
    """SIGTERM this one process by its PID, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(grace)


@contextlib.contextmanager
def running(
    args: list[str], env: dict[str, str], log: Path, port: int | None = None, **kwargs: object
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a subprocess (output to `log`), wait for its port if any; always stop it."""
    with log.open("ab") as out:
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, **kwargs
        )
    try:
        if port is not None:
            wait_for_port(proc, port)
        yield proc
    finally:
        stop(proc)


def python(*args: str) -> list[str]:
    return [sys.executable, *args]
