"""The log's two promises besides its content: a JSON line per record (exceptions included) when asked for, and files
bounded in size, rotated, and readable by their owner only."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cli import JsonLogFormatter, PrivateRotatingFileHandler


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tradeos.test-log-files")
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def test_a_json_record_is_one_line_with_its_exception(logger: logging.Logger, tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "json.log")
    handler.setFormatter(JsonLogFormatter())
    logger.addHandler(handler)

    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("the engine stopped on an error:\nsecond line")
    handler.flush()

    lines = (tmp_path / "json.log").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == {"ts", "level", "logger", "message", "exception"}
    assert record["level"] == "ERROR"
    assert record["logger"] == "tradeos.test-log-files"
    assert record["message"] == "the engine stopped on an error:\nsecond line"
    assert "ZeroDivisionError: division by zero" in record["exception"]
    assert record["ts"].endswith("Z")


def test_log_files_are_rotated_bounded_and_private(logger: logging.Logger, tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the most open usual umask: the files must be 0600 regardless
    try:
        handler = PrivateRotatingFileHandler(tmp_path / "tradeos.log", maxBytes=1000, backupCount=2)
        logger.addHandler(handler)
        for n in range(200):
            logger.warning("fill %04d booked", n)
        handler.close()
    finally:
        os.umask(previous)

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["tradeos.log", "tradeos.log.1", "tradeos.log.2"]
    for path in tmp_path.iterdir():
        assert path.stat().st_size <= 1000
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "fill 0199 booked" in (tmp_path / "tradeos.log").read_text()
