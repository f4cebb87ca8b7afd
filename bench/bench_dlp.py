"""DLP costs: the scan of a prompt with all eight profiles at 4 KiB, 64 KiB and 1 MiB (linear),
for ordinary prose and for text made mostly of dates and numbers (a CSV or log export: the numeric
detectors' worst ordinary case), in interleaved rounds (median and spread: the machine may be
shared); a gateway without DLP (nothing to pay: the config holds None and the run skips it), and the
stream hold-back: how many characters an event waits and the time-to-first-token it adds on a
stream like the fake provider's default one.

    .venv/bin/python bench/bench_dlp.py [rounds]
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
import timeit

from app.dlp.config import compile_dlp
from app.dlp.detector import detector_for
from app.dlp.profiles import PROFILES

PARAGRAPH = (
    "Please summarize the following report for the quarterly review. The team shipped the new billing "
    "flow in March 2024, reduced the error rate by 50%, and onboarded 3 enterprise customers (see "
    "section 4.2). Next quarter we plan to migrate the remaining services to the new cluster. "
)


def prompt(size: int) -> str:
    return (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]


def numbers(size: int) -> str:
    """Lines of a log or CSV export: a date and time, amounts, counts, ids (no finding in it)."""
    rng = random.Random(7)
    lines: list[str] = []
    total = 0
    while total < size:
        line = (
            f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}, "
            f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}, {rng.randint(1, 999)}, "
            f"{rng.random():.4f}, id {rng.randint(100000, 9999999)}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines)[:size]


SIZES = ((4096, "4 KiB"), (65536, "64 KiB"), (1 << 20, "1 MiB"))


def scan_cost(rounds: int) -> None:
    detector = detector_for(frozenset(PROFILES))
    cases = [
        (kind, label, size, make(size))
        for size, label in SIZES
        for kind, make in (("prose", prompt), ("numbers", numbers))
    ]
    timings: dict[tuple[str, str], list[float]] = {(kind, label): [] for kind, label, _, _ in cases}
    for _ in range(rounds):  # each round times every case once: load on the machine hits them alike
        for kind, label, size, text in cases:
            runs = max(3, 200 * 4096 // size)
            seconds = min(timeit.repeat(lambda t=text: detector.scan(t), number=runs, repeat=3)) / runs
            timings[(kind, label)].append(seconds)
    for kind, label, size, _ in cases:
        values = timings[(kind, label)]
        median = statistics.median(values)
        print(
            f"scan, all 8 profiles, {kind:>7} {label:>6}: median {median * 1e6:9.1f} us"
            f"  (spread {min(values) * 1e6:.1f}-{max(values) * 1e6:.1f}, {rounds} rounds;"
            f" {median * 1e9 / size:.1f} ns/char)"
        )


def no_dlp_cost() -> None:
    runs = 1_000_000
    seconds = timeit.timeit(lambda: compile_dlp(None), number=runs) / runs
    print(
        f"gateway without DLP: compile_dlp(None) at config load {seconds * 1e9:.0f} ns; per request: one `is None`"
    )


async def stream_ttft() -> None:
    """The fake's default stream (one event per word of `Hello from fake`), relayed through the
    hold-back: the first event waits for the stream's end, since fewer than 256 characters follow."""
    from app.dlp.stream_text import event_text

    words = ["Hello", " from", " fake"]
    events = [f"data: {json.dumps({'choices': [{'delta': {'content': w}}]})}\n\n".encode() for w in words]
    detector = detector_for(frozenset(PROFILES))
    started = time.perf_counter()
    text = ""
    positions = [0] * detector.size
    for raw in events:
        extracted = event_text(raw[6:-2])
        text += extracted.text if extracted else ""
        _, positions = detector.scan_from(text, positions, len(text) - 256)
    detector.scan_from(text, positions, len(text) + 300)
    cpu = (time.perf_counter() - started) * 1e6
    print(f"stream: the fake's default stream ({len(text)} characters) is held whole: time-to-first-token")
    print(f"  grows by the stream's own duration (all events arrive first) plus {cpu:.0f} us of scanning")
    per_event = []
    text, positions = "x" * 10_000, [0] * detector.size
    for _ in range(2000):
        text += "word "
        t0 = time.perf_counter()
        _, positions = detector.scan_from(text, positions, len(text) - 256)
        per_event.append(time.perf_counter() - t0)
    per_event.sort()
    print(f"  per event of 5 characters: median scan {per_event[1000] * 1e6:.1f} us; an event waits for the")
    print("  next 256 characters of text, i.e. at 4 characters a token about 64 tokens of the stream")


if __name__ == "__main__":
    scan_cost(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    no_dlp_cost()
    asyncio.run(stream_ttft())
