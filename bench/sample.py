"""Capture one real post's pre_save and post_save rows from the running dashboard.

The bare server sends these exact bytes, with each event's run, sequence and
time substituted, and each row's key (`data-key="<process>.<seq>"`, also in the
row's detail URLs) given a fresh seq per event, so the ceiling is measured with
the dashboard's own payloads (whatever its templates look like today).
"""

import asyncio
import re
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin

from bench import procs
from bench.clients import PAST_ANY, resume

SAMPLE_RUN = 990001
# Tokens in the row templates, replaced per event by the bare server.
RUN_TOKEN, SEQ_TOKEN, TNS_TOKEN = str(SAMPLE_RUN), "880001", "1234567890123456789"
# The seq of the row's event key (the pump's number), where the row has that key.
KEY_SEQ_TOKEN = "__bench_key_seq__"
ROW = re.compile(r"<tr\b.*?</tr>", re.S)
SIGNAL = re.compile(r'data-signal="([^"]+)"')
KEY = re.compile(r'data-key="([^"]+)\.(\d+)"')


def rows_of(frame: str, title: str) -> dict[str, str]:
    """The frame's head (before its first row) and its rows holding `title`, by signal."""
    found = {"head": frame.split("<tr", 1)[0]}
    for match in ROW.finditer(frame):
        if title in match.group() and (signal := SIGNAL.search(match.group())):
            found.setdefault(signal.group(1), match.group())
    return found


def templated(row: str, tns: int) -> str:
    """The sample title, in every spelling the row has it, with tokens in its place;
    and the event key's seq, wherever the key appears whole (data-key, detail URLs)."""
    for sep in (" ", "-"):
        tokens = sep.join((RUN_TOKEN, SEQ_TOKEN, TNS_TOKEN))
        row = row.replace(f"{SAMPLE_RUN}{sep}1{sep}{tns}", tokens)
    if key := KEY.search(row):
        process, seq = key.groups()
        whole = re.compile(rf"(?<![\w.-]){re.escape(process)}\.{seq}(?![\w.-])")
        row = whole.sub(f"{process}.{KEY_SEQ_TOKEN}", row)
    return row


def process_of(row: str) -> str:
    """The process part of the row's event key ("" if the row has none)."""
    key = KEY.search(row)
    return key.group(1) if key else ""


async def _capture(port: int, cookie: str, produce: Any, timeout: float) -> dict[str, str]:
    url = f"ws://{procs.HOST}:{port}/socket/"
    origin = Origin(f"http://{procs.HOST}:{port}")
    found: dict[str, str] = {}
    async with connect(
        url, origin=origin, additional_headers={"Cookie": cookie}, compression=None,
        max_size=None,
    ) as ws:
        # A socket is sent nothing before the page asks to resume. Live frames only, no
        # backfill: the rows as a live frame renders them (a history row differs).
        await ws.send(resume(PAST_ANY))
        await asyncio.to_thread(produce)
        deadline = time.monotonic() + timeout
        while not {"pre_save", "post_save"} <= found.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no pre_save and post_save rows of a bench post in {timeout} s")
            frame = await asyncio.wait_for(ws.recv(), left)
            assert isinstance(frame, str)
            for key, value in rows_of(frame, f"bench {SAMPLE_RUN} 1 ").items():
                found.setdefault(key, value)
    return found


def capture(port: int, cookie: str, produce: Any, timeout: float = 10.0) -> dict[str, Any]:
    """Rows of one bench post (run SAMPLE_RUN, seq 1), made by calling `produce()`."""
    rows = asyncio.run(_capture(port, cookie, produce, timeout))
    title = re.search(rf"bench {SAMPLE_RUN} 1 (\d+)", rows["post_save"])
    assert title is not None
    tns = int(title.group(1))
    return {
        "head": rows["head"],
        "pre_save": templated(rows["pre_save"], tns),
        "post_save": templated(rows["post_save"], tns),
        "process": process_of(rows["post_save"]),
    }
