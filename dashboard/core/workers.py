"""Blocking work on a thread of the dashboard's own, awaited from its loop."""

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


async def run_in(executor: ThreadPoolExecutor, func: Callable[..., Any], *args: Any) -> Any:
    """Run `func` on `executor`'s thread in the caller's (quiet) context, so the
    loop keeps serving sockets meanwhile. RuntimeError if the executor was shut
    down (at exit)."""
    run = contextvars.copy_context().run
    return await asyncio.get_running_loop().run_in_executor(executor, run, func, *args)
