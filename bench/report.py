"""The printed tables and the targets, from the figures of one run."""

from typing import Any

Result = dict[str, Any]


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def saves_table(saves: Result) -> str:
    targets = {"transaction": "<= 1.15x", "autocommit": "<= 1.15x"}  # update: context
    rows = []
    for mode, r in saves.items():
        rows.append([
            mode, str(r["creates_per_run"]), str(r["repeats"]),
            fmt(r["disconnected_us"]), fmt(r["connected_us"]), fmt(r["ratio"], 2) + "x",
            fmt(r["watched_us"]), fmt(r["watched_ratio"], 2) + "x",
            targets.get(mode, "(none)"), str(r["dropped"]),
            fmt(r["capture_only_us"]), fmt(r["capture_only_ratio"], 2) + "x",
            " ".join(fmt(x, 0) for x in r["connected_runs_us"]),
            " ".join(fmt(x, 0) for x in r["watched_runs_us"]),
            " ".join(fmt(x, 0) for x in r["disconnected_runs_us"]),
        ])
    out = table(
        ["mode", "saves", "runs", "off us", "on us", "on/off", "watched us", "watched/off",
         "target", "dropped", "capture-only us", "capture-only/off", "on runs us",
         "watched runs us", "off runs us"],
        rows,
    )
    notes = []
    for mode, r in saves.items():
        left = r.get("off_dashboard_left")
        if left:
            notes.append(f"  {mode}: 'off' still had the dashboard hooked in: {', '.join(left)}")
        elif left is not None:
            notes.append(f"  {mode}: 'off' checked: Django's own Signal methods only")
        if r.get("unsettled_runs"):
            notes.append(f"  {mode}: {r['unsettled_runs']} runs left the pipeline busy (30 s)")
    notes.append(
        "  ratios: the median of each run's ratio to the 'off' run of its own round"
        " (ratio of the medians in the JSON)"
    )
    return "\n".join([out, *notes, "", peers_table(saves)])


def peers_table(saves: Result) -> str:
    """The dashboard beside the floor and its peers, per create, paired ratios."""
    names = ["floor", "reference", "piped", "sentry", "busy"]
    rows = []
    for mode, r in saves.items():
        peers = r.get("peers") or {}
        cells = []
        for name in names:
            p = peers.get(name)
            cells += [fmt(p["us"]) if p else "-", fmt(p["ratio"], 2) + "x" if p else "n/a"]
        rows.append([mode, fmt(r["disconnected_us"]), *cells, fmt(r["capture_only_ratio"], 2) + "x",
                     fmt(r["ratio"], 2) + "x", fmt(r["watched_ratio"], 2) + "x"])
    return "Peers, same run (floor = Django's dispatch with no-op receivers; reference = our " \
        "lean same-record recorder, no pipeline; piped = the same, drained every 50 ms, " \
        "pickled and piped to a process that discards it; sentry = sentry-sdk signal spans, " \
        "traces 1.0; busy = nothing listening, another process spinning on the other core)\n" \
        + table(["mode", "off us", "floor us", "floor", "reference us", "reference",
                 "piped us", "piped", "sentry us", "sentry", "busy us", "busy", "ours capture-only",
                 "ours unwatched", "ours watched"],
                rows)


CPU_GROUPS = ("saves", "pump", "store", "sidecar", "other")


def saves_cpu_table(saves: Result) -> str:
    """Where a create's time went: CPU µs per create by thread, in the timed window."""
    rows = []
    for mode, r in saves.items():
        off_cpu, preempted = r.get("off_cpu_us") or {}, r.get("preempted_per_1k") or {}
        for kind, cpu in (r.get("cpu_us") or {}).items():
            cells = [cpu.get(g) for g in CPU_GROUPS]
            total = sum(c for c in cells if c is not None)
            rows.append([
                mode, kind, *(fmt(c, 0) for c in cells), fmt(total, 0),
                fmt(off_cpu.get(kind), 0), fmt(preempted.get(kind), 0),
            ])
    return table(
        ["mode", "run", *(f"{g} us" for g in CPU_GROUPS), "total us", "off-CPU us",
         "preempted /1k"],
        rows,
    )


def e2e_table(runs: list[Result]) -> str:
    rows = []
    for r in runs:
        rate = str(r["rate"]) if r["rate"] else "max"
        if "skipped" in r:
            reason = f"skipped: {r['skipped']}"[:40]
            rows.append([r["server"], str(r["k"]), rate, reason] + [""] * 11)
            continue
        lat = r.get("latency_ms") or {}
        rows.append([
            r["server"], str(r["k"]), rate,
            fmt(r.get("achieved_rate"), 0),
            str(r.get("produced")),
            str(r.get("rows_per_client_min")),
            f"{r.get('lost')} ({fmt(r.get('loss_pct'), 2)}%)",
            str(r.get("trimmed")),
            fmt(lat.get("p50")), fmt(lat.get("p99")), fmt(lat.get("max")),
            fmt(r.get("deliveries_per_s"), 0),
            fmt(r.get("server_cpu_pct"), 0),
            fmt(r.get("client_cpu_pct"), 0),
            str(r.get("publisher_dropped")),
        ])
    notes = [
        f"  {r['server']} K={r['k']} rate={r['rate'] or 'max'}: producer failed: "
        f"{r['producer_error']}"
        for r in runs
        if r.get("producer_error")
    ]
    return "\n".join([_e2e_rows(rows), *notes])


def _e2e_rows(rows: list[list[str]]) -> str:
    return table(
        ["server", "K", "rate/s", "achieved/s", "posts", "min rows/cl", "lost (%)", "trimmed",
         "p50 ms", "p99 ms", "max ms", "deliv/s", "srv %cpu", "cli %cpu", "srv drop"],
        rows,
    )


def _per_item_us(p: dict[str, Any]) -> float | None:
    items = p.get("items") or 0
    return p["total_ms"] * 1e3 / items if items else None


def probes_table(runs: list[Result]) -> str:
    """Django runs: time in the probed pipeline functions (bench/probes.py).

    prepare = describe + render of one frame (the render worker); store = the
    history write of every frame sent in the last 20 ms or more (the store worker;
    history.store.write). µs per event / row = sum over items.
    """
    rows = []
    for r in runs:
        probed = r.get("probes")
        if r["server"] != "django" or not probed:
            continue
        prepare = probed.get("prepare") or {}
        describe = probed.get("describe_event") or {}
        render = probed.get("render_frame") or {}
        store = probed.get("history.store") or {}
        calls = prepare.get("calls", 0)
        cells = [
            str(r["k"]), str(r["rate"]) if r["rate"] else "max",
            str(calls), fmt(prepare.get("items", 0) / calls if calls else None, 0),
            fmt(prepare["total_ms"] / calls if calls else None, 2),
            fmt(prepare.get("max_ms"), 1), fmt(prepare.get("total_ms"), 0),
            str(describe.get("calls", 0)), fmt(_per_item_us(describe), 0),
            fmt(describe.get("total_ms"), 0),
            str(render.get("items", 0)), fmt(_per_item_us(render), 0),
            fmt(render.get("max_ms"), 1), fmt(render.get("total_ms"), 0),
            str(store.get("calls", 0)), str(store.get("items", 0)), fmt(_per_item_us(store), 0),
            fmt(store.get("max_ms"), 1), fmt(store.get("total_ms"), 0),
        ]
        rows.append(cells)
    if not rows:
        return "(no probes reported)"
    return table(
        ["K", "rate/s",
         "frames", "ev/frame", "prep avg ms", "max ms", "sum ms",
         "described", "us/event", "sum ms",
         "rows rendered", "us/row", "max ms", "sum ms",
         "stores", "rows", "us/row", "max ms", "sum ms"],
        rows,
    )


THREADS = ("loop", "render", "store", "producer", "other")


def threads_table(runs: list[Result]) -> str:
    """Django runs: the server's CPU per thread (bench/probes.py thread_cpu), one GIL."""
    rows = []
    for r in runs:
        spent = r.get("thread_cpu_s")
        if r["server"] != "django" or not spent:
            continue
        wall = r.get("wall_s") or 0.0
        total = spent.get("process", 0.0)
        named = sum(spent.get(t, 0.0) for t in THREADS)
        cells = [str(r["k"]), str(r["rate"]) if r["rate"] else "max", fmt(wall, 1)]
        cells += [fmt(spent.get(t), 2) for t in THREADS]
        cells += [fmt(max(0.0, total - named), 2), fmt(total, 2),
                  fmt(100 * total / wall if wall else None, 0)]
        produced = r.get("produced") or 0
        cells.append(fmt(1e6 * spent.get("producer", 0.0) / produced if produced else None, 0))
        rows.append(cells)
    if not rows:
        return "(no thread CPU reported)"
    return table(
        ["K", "rate/s", "wall s", "loop s", "render s", "store s", "producer s", "other s",
         "ended s", "process s", "%1 core", "producer us/post"],
        rows,
    )


def find(runs: list[Result], server: str, k: int, rate: int) -> Result | None:
    for r in runs:
        if (r["server"], r["k"], r["rate"]) == (server, k, rate) and "skipped" not in r:
            return r
    return None


def p99(r: Result | None) -> float | None:
    return (r.get("latency_ms") or {}).get("p99") if r else None


def deliveries(r: Result | None) -> float | None:
    return r.get("deliveries_per_s") if r else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def ceiling_table(runs: list[Result]) -> str:
    rows = []
    for k in sorted({r["k"] for r in runs}):
        for rate in sorted({r["rate"] for r in runs}, key=lambda x: x or 10**9):
            ours = find(runs, "django", k, rate)
            if ours is None:
                continue
            event, batch = find(runs, "bare-event", k, rate), find(runs, "bare-batch", k, rate)
            rows.append([
                str(k), str(rate) if rate else "max",
                fmt(deliveries(ours), 0),
                fmt(deliveries(batch), 0), ratio(deliveries(ours), deliveries(batch)),
                fmt(deliveries(event), 0), ratio(deliveries(ours), deliveries(event)),
                fmt(p99(ours)), fmt(p99(batch)), fmt(p99(event)),
            ])
    return table(
        ["K", "rate/s", "django deliv/s", "bare-batch", "ratio", "bare-event", "ratio",
         "django p99", "bare-batch p99", "bare-event p99"],
        rows,
    )


def instructions_table(found: Result) -> str:
    """Instructions per create under callgrind (bench/instructions.py), ratios to off."""
    if "skipped" in found:
        return f"skipped: {found['skipped']}"
    rows = [
        [mode, fmt(r["saving_thread"] / 1000), fmt(r.get("saving_ratio"), 3) + "x",
         fmt(r["all_threads"] / 1000), fmt(r.get("all_ratio"), 3) + "x"]
        for mode, r in found["modes"].items()
    ]  # fmt: skip
    return table(["mode", "saving thread k", "ratio", "all threads k", "ratio"], rows)


def request_instructions_table(found: Result) -> str:
    """Per request kind, instructions in all threads under callgrind, ratios to off."""
    if "skipped" in found:
        return f"skipped: {found['skipped']}"
    modes = [m for m in found["geomean_all_threads"] if m != "off"]
    rows = [
        [kind, fmt(r["off"]["all_threads"] / 1000),
         *(fmt(r[m]["all_ratio"], 3) + "x" for m in modes)]
        for kind, r in found["kinds"].items()
    ]  # fmt: skip
    rows.append(["geomean", "", *(fmt(found["geomean_all_threads"][m], 3) + "x" for m in modes)])
    return table(["request", "off k instructions", *modes], rows)


def requests_table(found: Result) -> str:
    peers = [m for m in ("floor", "reference", "sentry", "busy") if f"geomean_{m}" in found]

    def cells(r: Result, mode: str) -> list[str]:
        return [fmt(r.get(f"{mode}_ms"), 2), fmt(r.get(f"{mode}_ratio"), 2) + "x"]

    rows = [
        [kind, fmt(r["off_ms"], 2), *cells(r, "on"), *cells(r, "watched"),
         *(c for m in peers for c in cells(r, m))]
        for kind, r in found["kinds"].items()
    ]  # fmt: skip
    geomeans = [c for m in peers for c in ("", fmt(found[f"geomean_{m}"], 2) + "x")]
    rows.append(["geomean", "", "", fmt(found["geomean_on"], 2) + "x", "",
                 fmt(found["geomean_watched"], 2) + "x", *geomeans])  # fmt: skip
    delete = found["bulk_delete"]
    rows.append([
        "bulk delete, 20,000 comments", fmt(delete["off"]["ms"], 1), fmt(delete["on"]["ms"], 1),
        fmt(delete["on"]["ms"] / delete["off"]["ms"], 2) + "x", "fast path: "
        + ("both" if delete["on"]["fast_path"] and delete["off"]["fast_path"] else "NOT with"), "",
        *("" for _ in peers for _ in (0, 1)),
    ])  # fmt: skip
    return table(
        ["request", "off ms", "on ms", "on", "watched ms", "watched",
         *(h for m in peers for h in (f"{m} ms", m))],
        rows,
    )


def turns_table(found: Result) -> str:
    """Per request kind: frames relayed, and the request thread's voluntary context
    switches (its waits, mostly for the GIL), per request: counts, which drift does not
    move as it moves time."""
    rows = [
        [kind, fmt(r.get("watched_frames"), 2),
         *(fmt(r.get(f"{m}_switches"), 1) for m in ("off", "on", "watched", "reference"))]
        for kind, r in found["kinds"].items()
    ]  # fmt: skip
    return table(
        ["request", "frames watched", "waits off", "waits on", "waits watched", "waits reference"],
        rows,
    )


def targets(
    saves: Result | None,
    runs: list[Result],
    requests: Result | None = None,
    twin: Result | None = None,
    ceiling: Result | None = None,
    request_instructions: Result | None = None,
) -> list[Result]:
    """Each target: what it asks, the figure measured, met or missed (never an assertion)."""
    out: list[Result] = []

    def add(name: str, goal: str, value: str, met: bool | None) -> None:
        verdict = "not measured" if met is None else ("met" if met else "MISSED")
        out.append({"target": name, "goal": goal, "measured": value, "verdict": verdict})

    def context(name: str, value: str) -> None:
        """A row beside a target, for context: no goal, no verdict."""
        out.append({"target": name, "goal": "(context, not a target)", "measured": value,
                    "verdict": "-"})  # fmt: skip

    for mode, limit in (("transaction", 1.15), ("autocommit", 1.15)):
        found = (saves or {}).get(mode)
        if not found:
            add(f"save overhead, {mode}", f"<= {limit}x", "-", None)
            continue
        # Judged on the worse of the two: nobody watching, a dashboard watching.
        worst = max(found["ratio"], found["watched_ratio"])
        add(f"save overhead, {mode}", f"<= {limit}x",
            f"{found['ratio']:.2f}x unwatched, {found['watched_ratio']:.2f}x watched",
            worst <= limit)

    if update := (saves or {}).get("update"):
        reference = (update.get("peers") or {}).get("reference")
        context("  ...an update, one transaction (its diff read)",
                f"{update['ratio']:.2f}x unwatched, {update['watched_ratio']:.2f}x watched"
                + (f"; reference {reference['ratio']:.2f}x" if reference else ""))

    if requests:
        worst = max(max(r["on_ratio"], r["watched_ratio"]) for r in requests["kinds"].values())
        on, watched = requests["geomean_on"], requests["geomean_watched"]
        add("per request (4 kinds, geomean)", "<= 1.04x unwatched, <= 1.06x watched, each <= 1.10x",
            f"{on:.2f}x unwatched, {watched:.2f}x watched, worst kind {worst:.2f}x",
            on <= 1.04 and watched <= 1.06 and worst <= 1.10)  # fmt: skip
        if (sentry := requests.get("geomean_sentry")) is not None:
            added = max(on, watched) - 1
            add("per request, against sentry-sdk", "adds < 1/3 of what sentry's signal spans add",
                f"+{added:.1%} vs sentry +{sentry - 1:.1%} (same run)",
                added < (sentry - 1) / 3)  # fmt: skip
        if (counted := request_instructions) and "skipped" not in counted:
            # Not a target: the same four kinds counted, not timed (no drift, no waits).
            geo = counted["geomean_all_threads"]
            worst_counted = max(
                counted["kinds"][kind][mode]["all_ratio"]
                for kind in counted["kinds"] for mode in ("unwatched", "watched")
            )
            sentry_counted = (
                f", sentry {geo['sentry']:.3f}x" if "sentry" in geo else ""
            )
            context("  ...in instructions (callgrind)",
                    f"{geo['unwatched']:.3f}x unwatched, {geo['watched']:.3f}x watched, worst "
                    f"kind {worst_counted:.3f}x; reference {geo['reference']:.3f}x"
                    f"{sentry_counted}")  # fmt: skip
        delete = requests["bulk_delete"]
        add("bulk delete of 20,000 rows", "Django's fast path, as without the dashboard",
            f"{delete['on']['ms']:.0f} ms vs {delete['off']['ms']:.0f} ms without",
            delete["on"]["fast_path"] == delete["off"]["fast_path"])  # fmt: skip
    else:
        add("per request (4 kinds, geomean)", "<= 1.04x unwatched, <= 1.06x watched", "-", None)

    for k, rate, goal_ms, need_lossless in ((10, 100, 10, False), (100, 1000, 30, True)):
        name, goal = f"{rate:,}/s to {k} dashboards", f"p99 <= {goal_ms} ms"
        if need_lossless:
            goal = f"0 lost, {goal}"
        r = find(runs, "django", k, rate)
        if r is None:
            add(name, goal, "-", None)
            continue
        achieved = r.get("achieved_rate") or 0.0
        latency = p99(r)
        value = (f"p99 {fmt(latency)} ms, {r['lost']} lost, {r['trimmed']} trimmed, "
                 f"{fmt(achieved, 0)}/s achieved")
        met = latency is not None and latency <= goal_ms and achieved >= 0.95 * rate
        add(name, goal, value, met and (r["lost"] == 0 or not need_lossless))

    name, goal = "two servers on Redis, 1,000 events/s from 2 processes", "0 lost, p99 <= 100 ms"
    if not twin or "skipped" in twin:
        add(name, goal, (twin or {}).get("skipped", "-"), None)
    else:
        add(name, goal, f"p99 {fmt(twin['p99_ms'])} ms, {twin['lost']} lost, "
            f"{twin['trimmed']} trimmed, K={twin['k']}",
            twin["lost"] == 0 and twin["p99_ms"] is not None and twin["p99_ms"] <= 100)

    ours = deliveries(find(runs, "django", 100, 0))
    bare = deliveries(find(runs, "bare-batch", 100, 0))
    share = ours / bare if ours is not None and bare else None
    add("fastest to 100 dashboards", ">= 0.65 x bare batched",
        "-" if share is None else f"{fmt(ours, 0)} vs {fmt(bare, 0)} deliv/s = {share:.2f}x",
        None if share is None else share >= 0.65)
    if ceiling and bare and ours is not None:
        # Not a target: how much of the bare server's rate Django's own creates allow.
        most = ceiling["posts_per_s"] * 100
        context("  ...Django alone, same producer, no dashboard",
                f"{fmt(most, 0)} deliv/s at most = {most / bare:.2f}x bare; ours "
                f"{ours / most:.2f}x of it")  # fmt: skip
        # Not a target either: the producer runs in the server process, so its creates
        # and the sending to the sockets take turns on one GIL. Were the dashboard free
        # and daphne's sending as cheap as the bare server's, a row would still cost
        # both: 1 / (1/P + 1/B).
        shared = 1 / (1 / most + 1 / bare)
        context("  ...both on one GIL, the dashboard free",
                f"{fmt(shared, 0)} deliv/s at most = {shared / bare:.2f}x bare; ours "
                f"{ours / shared:.2f}x of it")  # fmt: skip
    return out


def targets_table(items: list[Result]) -> str:
    return table(
        ["target", "goal", "measured", "verdict"],
        [[t["target"], t["goal"], t["measured"], t["verdict"]] for t in items],
    )
