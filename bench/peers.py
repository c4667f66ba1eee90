"""Peers side by side (`make bench-peers`): on the same exported bars and in the same run, TRADEOS's pure engine
against NautilusTrader's `BacktestEngine`, backtrader, and TRADEOS's own strategy vectorised in numpy (the limit);
then TRADEOS's `GET /portfolio` with the engine trading against a bare FastAPI app serving the same body from
Redis, under the same load generator and settings as rest_load.py.

The peers install into virtual environments of their own, created on first use from pinned wheels and reused
afterwards: `$TRADEOS_BENCH_VENVS`, else `~/.cache/tradeos/bench-venvs` (outside the repository, never the
project's dependencies). Only our driver scripts (bench/peer_drivers/) run in them. Every figure carries its value,
its ratio to TRADEOS and the load average when it was measured.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import redis
from backtest import export_sim
from engine import PURE_SETTINGS, pure
from harness import Figure, Stopwatch, emit, figure, load_average
from live_service import LiveService, free_port, live_service
from rest_load import CONNECTIONS, SECONDS, WARM_UP_SECONDS, run_python, run_wrk
from vectorised import run as run_vectorised

from live.assembly import build_engine
from live.domain import Bar, Side
from live.engine import Engine
from live.profiles import get_profile

DRIVERS = Path(__file__).resolve().parent / "peer_drivers"
# Pinned wheels for this Python; the bare app pins the versions the project's venv runs, so the stack is the same.
PEERS: dict[str, tuple[str, ...]] = {
    "nautilus": ("nautilus_trader==1.221.0", "pydantic==2.14.4"),
    "backtrader": ("backtrader==1.9.78.123", "pandas==2.3.3", "pyarrow==26.0.1", "pydantic==2.14.4"),
    "fastapi": (
        "fastapi==0.150.0",
        "uvicorn==0.54.0",
        "uvloop==0.22.1",
        "httptools==0.9.0",
        "redis==8.1.0",
    ),
}
PEER_RUNS = {"nautilus": 2, "backtrader": 1}
NUMPY_RUNS = 5
REST_ROUNDS = 2
BODY_KEY = "tradeos:bench:portfolio_body"
PROFILE = "balanced"
NAUTILUS_TARGET = 5.0  # TRADEOS's pure engine at least this many times NautilusTrader's bars/s


def venvs_home() -> Path:
    """Where the peers' venvs live: outside the repository, kept between runs."""
    configured = os.environ.get("TRADEOS_BENCH_VENVS")
    if configured:
        return Path(configured)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tradeos" / "bench-venvs"


def peer_python(name: str) -> Path:
    """The peer's interpreter, its venv created and installed first if this exact pin set has none yet."""
    pins = PEERS[name]
    digest = hashlib.sha256("\n".join((sys.version, *pins)).encode()).hexdigest()[:12]
    home = venvs_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    venv = home / f"{name}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".tradeos-ready").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:", *pins]
    for step in ([sys.executable, "-m", "venv", str(venv)], [str(python), *install]):
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"creating the {name} venv in {venv} failed: {last[:300]}")
    (venv / ".tradeos-ready").write_text("\n".join(pins) + "\n")
    return python


def panel(path: Path) -> tuple[tuple[str, ...], list[list[Bar]], dict[str, np.ndarray]]:
    """The exported bars as the engine's cross-sections and as (bars, symbols) arrays for numpy."""
    frame = pl.read_parquet(path).sort("timestamp", maintain_order=True)
    first = frame["timestamp"][0]
    symbols = tuple(frame.filter(pl.col("timestamp") == first)["symbol"].to_list())
    width = len(symbols)
    if frame.height % width or frame["symbol"].to_list()[:width] != list(symbols):
        raise RuntimeError("the exported bars are not a full panel (every symbol at every timestamp)")
    rows = frame.rows()
    batches = [
        [
            Bar(
                timestamp=r[0],
                symbol=r[1],
                open=r[2],
                high=r[3],
                low=r[4],
                close=r[5],
                volume=r[6],
                spread=r[7],
            )
            for r in rows[i : i + width]
        ]
        for i in range(0, len(rows), width)
    ]
    arrays = {c: frame[c].to_numpy().reshape(-1, width) for c in ("close", "high", "low")}
    return symbols, batches, arrays


def agreement(
    symbols: tuple[str, ...], batches: list[list[Bar]], arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The numpy version's signal values and decisions against one (untimed) engine run over the same bars."""
    engine: Engine = build_engine(PURE_SETTINGS, symbols=symbols, profile=get_profile(PROFILE))
    for batch in batches:
        engine.step(batch)
    out = engine.outbox
    strengths, decisions = run_vectorised(
        arrays["close"], arrays["high"], arrays["low"], get_profile(PROFILE)
    )
    row_of = {batch[0].timestamp: i for i, batch in enumerate(batches)}
    column = {symbol: i for i, symbol in enumerate(symbols)}
    worst = 0.0
    for timestamp, symbol, signal_type, strength, *_ in out.signal_rows:
        ours = strengths[signal_type][row_of[timestamp], column[symbol]]
        worst = max(worst, abs(float(ours) - strength)) if ours == ours else float("inf")
    engine_orders = {
        (
            row_of[o.timestamp],
            column[o.symbol],
            0 if o.reduces_position else (1 if o.side is Side.BUY else -1),
        )
        for o in out.orders
        if o.status.value != "rejected"
    }
    numpy_orders = set(
        zip(decisions.bar.tolist(), decisions.symbol.tolist(), decisions.action.tolist(), strict=True)
    )
    return {
        "signal_values_compared": len(out.signal_rows),
        "signal_values_max_abs_difference": worst,
        "engine_orders": len(engine_orders),
        "numpy_decisions": len(numpy_orders),
        "decisions_in_both": len(engine_orders & numpy_orders),
        "engine_rejections_or_breakers": len(out.risk_events),
    }


def numpy_limit(arrays: dict[str, np.ndarray]) -> tuple[float, float]:
    """(best wall, best CPU) seconds of the vectorised strategy over the whole panel."""
    profile = get_profile(PROFILE)
    wall = cpu = float("inf")
    for _ in range(NUMPY_RUNS):
        with Stopwatch() as watch:
            run_vectorised(arrays["close"], arrays["high"], arrays["low"], profile)
        wall, cpu = min(wall, watch.wall), min(cpu, watch.cpu)
    return wall, cpu


def say(text: str) -> None:
    """Progress on stderr (run.py keeps stdout's last line for the figures)."""
    print(f"  peers: {text}", file=sys.stderr, flush=True)


def run_peer(name: str, bars_file: Path) -> dict[str, Any]:
    """The peer's driver in its venv over the bars file: its JSON line, and the load average as it started."""
    python = peer_python(name)
    say(f"{name} ...")
    load = load_average()
    done = subprocess.run(
        [str(python), str(DRIVERS / f"{name}_engine.py"), str(bars_file), str(PEER_RUNS[name])],
        cwd=DRIVERS,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed: {(done.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_average"] = load
    return result


@contextmanager
def bare_app(service: LiveService) -> Iterator[str]:
    """The bare app in its own venv, on a free port, reading the body from the service's Redis DB."""
    python = peer_python("fastapi")
    port = free_port()
    proc = subprocess.Popen(
        [str(python), str(DRIVERS / "bare_portfolio_api.py"), str(port), service.redis_url, BODY_KEY],
        cwd=DRIVERS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the bare app exited: {proc.stderr.read().decode()[-300:] if proc.stderr else ''}"
                )
            try:
                with urllib.request.urlopen(url + "/portfolio", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the bare app did not answer within 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def rest_side_by_side() -> dict[str, Any]:
    """`GET /portfolio` of TRADEOS and of the bare app, alternately, while the engine trades at full speed."""
    generator = run_wrk if shutil.which("wrk") else run_python
    paths = ("/portfolio",)
    rounds: dict[str, list[dict[str, Any]]] = {"tradeos": [], "bare": []}
    with live_service(sim_days=400) as service:
        deadline = time.monotonic() + 60
        while not service.get_json("/trades?limit=50"):
            if time.monotonic() > deadline:
                raise RuntimeError("no fill within 60 s")
            time.sleep(0.2)
        with urllib.request.urlopen(service.api_url + "/portfolio", timeout=5) as response:
            body = response.read()
        client = redis.Redis.from_url(service.redis_url)
        client.set(BODY_KEY, body)
        client.close()
        with bare_app(service) as bare_url:
            for _ in range(REST_ROUNDS):
                for side, url in (("tradeos", service.api_url), ("bare", bare_url)):
                    generator(url, WARM_UP_SECONDS, paths)
                    load = load_average()
                    summary, _ = generator(url, SECONDS, paths)
                    summary["load_average"] = load
                    summary["req_per_s"] = summary["requests"] / summary["seconds"]
                    rounds[side].append(summary)
    return {
        "rounds": rounds,
        "body_bytes": len(body),
        "generator": "wrk -t1" if generator is run_wrk else "python asyncio (in-process)",
    }


def _best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return max(rounds, key=lambda r: r["req_per_s"])


def measure() -> dict[str, Figure]:
    setup = Stopwatch()
    with setup:
        say(f"virtual environments under {venvs_home()} ...")
        with ThreadPoolExecutor(len(PEERS)) as pool:  # on a first run, the downloads overlap
            list(pool.map(peer_python, PEERS))
    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory() as scratch:
        bars_file = Path(scratch) / "sim30.parquet"
        bars = export_sim(bars_file)
        symbols, batches, arrays = panel(bars_file)
        load = load_average()
        say("TRADEOS pure engine ...")
        tradeos, tradeos_cpu, _ = pure(batches, symbols)
        common = {
            "bars": bars,
            "symbols": len(symbols),
            "bars_file": "the bench's 30-day x 8-symbol sim, Parquet",
        }
        figures["peers_engine_tradeos"] = figure(
            round(tradeos),
            "bars/s",
            "report it (the reference of the ratios)",
            None,
            ratio_to_tradeos=1.0,
            cpu_bars_per_s=round(tradeos_cpu),
            load_average=round(load, 2),
            note="Engine.step over the cross-sections read from the exported file, best of 3 (engine.py's pure)",
            **common,
        )
        load = load_average()
        say("numpy limit, and its agreement with the engine ...")
        wall, cpu = numpy_limit(arrays)
        check = agreement(symbols, batches, arrays)
        rate = bars / wall
        figures["peers_engine_numpy"] = figure(
            round(rate),
            "bars/s",
            "report the ratio (the limit to approach)",
            None,
            ratio_to_tradeos=round(rate / tradeos, 2),
            cpu_bars_per_s=round(bars / cpu),
            cpu_ratio_to_tradeos=round(bars / cpu / tradeos_cpu, 2),
            load_average=round(load, 2),
            agreement=check,
            note=f"bench/vectorised.py: signals, regime, composite and decisions over the panel, best of {NUMPY_RUNS}",
            **common,
        )
        for name, label in (
            ("nautilus", "NautilusTrader BacktestEngine"),
            ("backtrader", "backtrader Cerebro"),
        ):
            result = run_peer(name, bars_file)
            rate = result["bars"] / min(result["wall_s"])
            ratio = rate / tradeos
            holds = tradeos / rate >= NAUTILUS_TARGET if name == "nautilus" else None
            figures[f"peers_engine_{name}"] = figure(
                round(rate),
                "bars/s",
                f"TRADEOS >= {NAUTILUS_TARGET:g}x this" if name == "nautilus" else "report the ratio",
                holds,
                ratio_to_tradeos=round(ratio, 3),
                tradeos_times_faster=round(1 / ratio, 2),
                cpu_bars_per_s=round(result["bars"] / min(result["cpu_s"])),
                cpu_ratio_to_tradeos=round(result["bars"] / min(result["cpu_s"]) / tradeos_cpu, 3),
                runs_wall_s=[round(x, 2) for x in result["wall_s"]],
                orders=result["orders"],
                version=result["version"],
                load_average=round(result["load_average"], 2),
                note=f"{label} in its own venv (bench/peer_drivers/{name}_engine.py), best of {PEER_RUNS[name]}",
                **common,
            )
    say("REST: TRADEOS and the bare app, alternately ...")
    rest = rest_side_by_side()
    ours, bare = _best(rest["rounds"]["tradeos"]), _best(rest["rounds"]["bare"])
    req_ratio = ours["req_per_s"] / bare["req_per_s"]
    p99_ratio = ours["p99_ms"] / bare["p99_ms"]
    shared = {
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "generator": rest["generator"],
        "body_bytes": rest["body_bytes"],
    }
    figures["peers_rest_bare_fastapi"] = figure(
        round(bare["req_per_s"]),
        "req/s",
        "report it (the floor of GET /portfolio)",
        None,
        ratio_to_tradeos=round(bare["req_per_s"] / ours["req_per_s"], 2),
        p50_ms=round(bare["p50_ms"], 2),
        p99_ms=round(bare["p99_ms"], 2),
        p99_ratio_to_tradeos=round(bare["p99_ms"] / ours["p99_ms"], 2),
        rounds=[_round(r) for r in rest["rounds"]["bare"]],
        load_average=round(bare["load_average"], 2),
        note="FastAPI + uvicorn (httptools, uvloop) in its own venv, one Redis GET per request, same body as "
        "TRADEOS's; loaded like rest_load.py (GET /portfolio only) while TRADEOS's engine trades; best round",
        **shared,
    )
    figures["peers_rest_tradeos_portfolio"] = figure(
        round(ours["req_per_s"]),
        "req/s",
        ">= 0.9x the bare app's req/s, p99 <= 1.5x its p99",
        req_ratio >= 0.9 and p99_ratio <= 1.5 and ours["non_2xx"] == 0 and ours["errors"] == 0,
        ratio_to_tradeos=1.0,
        ratio_to_bare=round(req_ratio, 2),
        p50_ms=round(ours["p50_ms"], 2),
        p99_ms=round(ours["p99_ms"], 2),
        p99_ratio_to_bare=round(p99_ratio, 2),
        rounds=[_round(r) for r in rest["rounds"]["tradeos"]],
        load_average=round(ours["load_average"], 2),
        note="TRADEOS's GET /portfolio of `tradeos up --speed 0` while its engine trades, alternating rounds with "
        "the bare app; best round",
        **shared,
    )
    figures["peers_engine_tradeos"]["setup_seconds_venvs"] = round(setup.wall, 1)
    return figures


def _round(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("req_per_s", "p50_ms", "p99_ms", "max_ms", "errors", "non_2xx", "load_average")
    return {k: round(summary[k], 2) if isinstance(summary[k], float) else summary[k] for k in keys}


if __name__ == "__main__":
    emit(measure())
