"""The throwaway Redis tests stop and start: one whose port another server holds refuses to
start, instead of letting its test run against (and then stop) the other's data."""

from pathlib import Path

import pytest

from tests.support import RedisServer


def test_a_redis_server_whose_port_is_taken_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = RedisServer(tmp_path / "first")
    first.start()
    try:
        second = RedisServer(tmp_path / "second")
        second.port, second.url = first.port, first.url
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
    finally:
        first.stop()
