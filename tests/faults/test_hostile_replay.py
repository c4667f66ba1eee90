"""Hostile replay files: `tradeos up --feed replay` refuses each with exit code 2 and one line naming where and why,
and writes nothing to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.faults.conftest import PrivateRedis
from tests.faults.desk import ENGINE_ONLY, scalar
from tests.support import run_cli

pytestmark = pytest.mark.faults

HEADER = "timestamp,symbol,open,high,low,close,volume"
GOOD = [
    "2026-01-05T00:00:00Z,AAA,10,10.5,9.5,10.2,100",
    "2026-01-05T00:00:00Z,BBB,20,20.5,19.5,20.2,100",
    "2026-01-05T00:01:00Z,AAA,10.2,10.4,10.1,10.3,100",
    "2026-01-05T00:01:00Z,BBB,20.2,20.4,20.1,20.3,100",
]
BAD_LINE = "2026-01-05T00:02:00Z,AAA,{open},10.4,10.1,10.3,100"

CASES = {
    "missing column": (
        ["timestamp,symbol,open,high,low,volume", "2026-01-05T00:00:00Z,AAA,10,10.5,9.5,100"],
        [],
        ["close"],
    ),
    "NaN price": ([HEADER, *GOOD, BAD_LINE.format(open="NaN")], [], ["line 6", "open"]),
    "infinite price": ([HEADER, *GOOD, BAD_LINE.format(open="inf")], [], ["line 6", "open"]),
    "negative price": ([HEADER, *GOOD, BAD_LINE.format(open="-10.2")], [], ["line 6", "open"]),
    "zero price": ([HEADER, *GOOD, BAD_LINE.format(open="0")], [], ["line 6", "open"]),
    "text price": ([HEADER, *GOOD, BAD_LINE.format(open="ten")], [], ["line 6", "open"]),
    "missing price": ([HEADER, *GOOD, BAD_LINE.format(open="")], [], ["line 6", "open"]),
    "unsorted timestamps": (
        [HEADER, GOOD[0], GOOD[2], "2026-01-05T00:00:30Z,BBB,20,20.5,19.5,20.2,100"],
        [],
        ["line 4", "backwards"],
    ),
    "duplicate timestamp": ([HEADER, *GOOD, GOOD[3]], [], ["line 6", "duplicate"]),
    "unparsable timestamp": (
        [HEADER, *GOOD, "yesterday,AAA,10,10.5,9.5,10.2,100"],
        [],
        ["line 6", "timestamp"],
    ),
    "unknown symbol": (
        [HEADER, *GOOD, "2026-01-05T00:02:00Z,ZZZ,10,10.5,9.5,10.2,100"],
        ["--symbols", "AAA,BBB"],
        ["line 6", "ZZZ"],
    ),
    "high below low": ([HEADER, *GOOD, "2026-01-05T00:02:00Z,AAA,10,9,11,10,100"], [], ["line 6", "high"]),
    "negative volume": (
        [HEADER, *GOOD, "2026-01-05T00:02:00Z,AAA,10,10.5,9.5,10.2,-1"],
        [],
        ["line 6", "volume"],
    ),
    "empty file": ([""], [], ["empty"]),
    "header only": ([HEADER], [], ["empty"]),
    "binary garbage": (["\x00\x01\x02\xff\xfe garbage"], [], ["bars.csv"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_replay_file_is_refused_with_one_line_naming_it_and_nothing_is_written(
    tmp_path: Path, private_database_url: str, private_redis: PrivateRedis, case: str
) -> None:
    lines, flags, named = CASES[case]
    data = tmp_path / "bars.csv"
    data.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    code, output = run_cli(
        tmp_path / "home",
        [*ENGINE_ONLY, "--feed", "replay", "--data", str(data), "--speed", "0", *flags],
        {"TRADEOS_DATABASE_URL": private_database_url, "TRADEOS_REDIS_URL": private_redis.url},
        timeout=60,
    )
    assert code == 2, output
    assert len(output.strip().splitlines()) == 1, output
    for word in named:
        assert word in output, (word, output)
    # Nothing written: not even the schema (the file is checked before any store is touched).
    try:
        bars = scalar(private_database_url, "SELECT count(*) FROM bars")
    except psycopg.errors.UndefinedTable:
        bars = 0
    assert bars == 0
    assert private_redis.client().dbsize() == 0
