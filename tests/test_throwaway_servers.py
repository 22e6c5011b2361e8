"""The throwaway servers tests stop and start: one whose port another server holds refuses to
start, instead of letting its test run against (and then stop) the other's data."""

from pathlib import Path

import pytest

from tests.support import NatsServer, RedisServer


@pytest.mark.parametrize("kind", [RedisServer, NatsServer])
def test_a_server_whose_port_is_taken_does_not_start(
    tmp_path: Path, kind: type[RedisServer | NatsServer]
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = kind(tmp_path / "first")
    first.start()
    try:
        second = kind(tmp_path / "second")
        second.port, second.url = first.port, first.url
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
    finally:
        first.stop()
