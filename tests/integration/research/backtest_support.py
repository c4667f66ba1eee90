"""Replay files and a `tradeos backtest` runner for the research tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from live.feeds.sim import SimFeed

ROOT = Path(__file__).resolve().parents[3]
PEEKING = Path(__file__).resolve().with_name("peeking_strategy.py")


def sim_replay(path: Path, *, days: float, seed: int = 1) -> Path:
    """The sim feed's minute bars written as a replay CSV (floats as their shortest repr, times with a Z)."""
    lines = ["timestamp,symbol,open,high,low,close,volume,spread"]
    for batch in SimFeed(sim_days=days, seed=seed).batches():
        stamp = batch[0].timestamp.isoformat().replace("+00:00", "Z")
        lines += [
            f"{stamp},{b.symbol},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r},{b.spread!r}"
            for b in batch
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest(
    home: Path, args: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`tradeos backtest <args>` with its own TRADEOS_HOME, to completion; stdout and stderr kept apart."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOS_")}
    full_env.update({"TRADEOS_HOME": str(home), "DO_NOT_TRACK": "1"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "backtest", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        check=False,
    )
