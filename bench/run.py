"""`make bench`: runs every benchmark script in its own process, writes bench/results.json and the table in
bench/README.md. A script that fails or overruns leaves its figures with no value and the reason in the note.

`--only SCRIPT` (repeatable; `make bench-peers` is `--only peers.py`) runs just those scripts and replaces only
their figures in the existing results.json, each stamped with its own date."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import ROOT, machine

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

# script, its figures (for a failure entry), timeout in seconds. The whole run stays under 15 minutes.
SCRIPTS: list[tuple[str, list[tuple[str, str, str]], int]] = [
    (
        "engine.py",
        [
            ("engine_throughput", "bars/s", ">= 200000"),
            ("engine_throughput_persisted", "bars/s", ">= 50000"),
            ("tick_to_order_latency_p99", "µs", "<= 1000"),
            ("tick_to_order_latency_p50", "µs", "report it"),
        ],
        240,
    ),
    ("backtest.py", [("backtest_throughput", "bars/s", ">= 150000")], 240),
    ("walk_forward.py", [("walk_forward_64x4", "s", "<= 600")], 900),
    ("ic.py", [("ic_analysis_speedup", "x faster than alphalens", ">= 20")], 180),
    (
        "performance_stats.py",
        [("performance_stats_speedup", "x faster than empyrical", "report the ratio")],
        60,
    ),
    ("regime_retrain.py", [("regime_retrain", "s", "<= 30")], 150),
    (
        "sync_rollup.py",
        [("sync_rollup_1M_fills", "s", "report it"), ("sync_rollup_10M_fills", "s", "<= 10")],
        330,
    ),
    ("memory.py", [("memory_peak_rss", "MB", "report it")], 120),
    ("halt_latency.py", [("halt_latency", "ms", "<= 10")], 180),
    ("rest_load.py", [("rest_load", "req/s", ">= 3000 at p99 <= 25 ms")], 120),
    ("ws_fanout.py", [("websocket_fanout_p99", "ms", "<= 50")], 120),
    (
        "dashboard.py",
        [("dashboard_first_paint", "s", "<= 1"), ("dashboard_fill_to_row_p99", "ms", "<= 500")],
        300,
    ),
    (
        "peers.py",
        [
            ("peers_engine_tradeos", "bars/s", "report it (the reference of the ratios)"),
            ("peers_engine_numpy", "bars/s", "report the ratio (the limit to approach)"),
            ("peers_engine_nautilus", "bars/s", "TRADEOS >= 5x this"),
            ("peers_engine_backtrader", "bars/s", "report the ratio"),
            ("peers_rest_bare_fastapi", "req/s", "report it (the floor of GET /portfolio)"),
            ("peers_rest_tradeos_portfolio", "req/s", ">= 0.9x the bare app's req/s, p99 <= 1.5x its p99"),
        ],
        # The first run creates the peers' virtual environments (a few minutes of downloads).
        900,
    ),
]


def run_script(script: str, timeout: int) -> tuple[dict[str, Any] | None, str, float]:
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script)], cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s", time.perf_counter() - started
    elapsed = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"failed (exit {done.returncode}): {reason[:300]}", elapsed
    return json.loads(lines[-1]), "", elapsed


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    date = results["machine"]["date"]
    rows = [
        "| figure | value | target | holds | command | date |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in results.items():
        if name == "machine":
            continue
        holds = {True: "yes", False: "**no**", None: "—"}[entry.get("holds")]
        value = f"{_cell(entry.get('value'))} {entry.get('unit', '')}".strip()
        ratio = entry.get("ratio_to_tradeos")
        if ratio is not None and ratio != 1.0 and entry.get("value") is not None:
            value += f" ({_cell(ratio)}× TRADEOS)"
        if entry.get("value") is None:
            value = f"— ({entry.get('note', 'not measured')})"
        command = f"`{entry['command']}`" if entry.get("command") else "—"
        when = entry.get("date", date)
        rows.append(f"| {name} | {value} | {entry.get('target', '')} | {holds} | {command} | {when} |")
    m = results["machine"]
    rows.append("")
    rows.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, Python {m['python']}, "
        f"load average {m['load_average_at_start']} at the start; whole run {m['run_seconds']:.0f} s."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Runs the benchmarks and records their figures.")
    parser.add_argument("--only", action="append", metavar="SCRIPT", help="run only this script (repeatable)")
    only = parser.parse_args(argv).only
    known = [script for script, _, _ in SCRIPTS]
    unknown = [name for name in only or [] if name not in known]
    if unknown:
        print(f"bench: --only {unknown[0]}: not a benchmark script ({', '.join(known)})", file=sys.stderr)
        return 2
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine()}
    if only:
        results = json.loads(RESULTS.read_text())
    stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    for script, figures, timeout in SCRIPTS:
        if only and script not in only:
            continue
        print(f"bench: {script} ...", file=sys.stderr, flush=True)
        measured, error, elapsed = run_script(script, timeout)
        command = f".venv/bin/python bench/{script}"
        for name, unit, target in figures:
            if measured is not None and name in measured:
                entry = measured[name]
            else:
                entry = {
                    "value": None,
                    "unit": unit,
                    "target": target,
                    "holds": None,
                    "note": error or "missing",
                }
            entry["command"] = command
            if only:
                entry["date"] = stamp
            results[name] = entry
            print(f"  {name}: {entry.get('value')} {entry.get('unit')} (target {target})", file=sys.stderr)
        print(f"  ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    if not only:
        results["machine"]["run_seconds"] = round(time.perf_counter() - started, 1)
        results["machine"]["finished"] = (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    text = README.read_text() if README.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(f"{head}{START}\n{table(results)}\n{END}{tail}")
    print(f"bench: wrote {RESULTS.relative_to(ROOT)} and {README.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
