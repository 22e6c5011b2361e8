"""Each variant is generated once per run and shared by the tests of every module: the checks on
the untouched service, then `make resource` in the same tree (support.added_resource)."""

from pathlib import Path

import pytest

from tests.generator.support import DESCRIPTION, VARIANTS, generate


def _generate(factory: pytest.TempPathFactory, *data: str) -> Path:
    answers = (f"description={DESCRIPTION}", *data)
    return generate(factory.mktemp("generated"), *answers)


@pytest.fixture(scope="session")
def with_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Its own event type prefix: the example's catalogue and m2m tests hold it to the code.
    return _generate(tmp_path_factory, "example_domain=true", "event_prefix=acme.billing")


@pytest.fixture(scope="session")
def without_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _generate(tmp_path_factory, "example_domain=false")


@pytest.fixture(params=VARIANTS)
def service(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(request.param)
    return path
