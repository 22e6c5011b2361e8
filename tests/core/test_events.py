"""The CloudEvent envelope read back from broker fields: what is not a valid event is refused."""

import json

import pytest

from core.events import CloudEvent

EVENT = CloudEvent(
    id="evt-1",
    source="/services/orders",
    type="orders.order.placed.v1",
    subject="order/1",
    time="2026-11-21T10:00:00Z",
    data={"order_id": "1"},
    partitionkey="1",
    sequence="00000000000000000001",
)


def test_fields_read_back_as_the_same_event() -> None:
    assert CloudEvent.from_fields(EVENT.to_fields()) == EVENT


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"id": ""}, "missing attributes: id"),
        ({"subject": "", "data": ""}, "missing attributes: subject, data"),
        ({"specversion": "0.3"}, "unsupported specversion 0.3"),
        ({"time": "2026-11-21T10:00:00"}, "has no UTC offset"),
        ({"data": json.dumps(["not", "an", "object"])}, "data is not a JSON object"),
    ],
    ids=["no-id", "no-subject-nor-data", "old-specversion", "local-time", "data-a-list"],
)
def test_fields_that_are_not_a_valid_event_are_refused(
    changes: dict[str, str], refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        CloudEvent.from_fields(EVENT.to_fields() | changes)


@pytest.mark.parametrize("broken", ["time", "data"])
def test_unparseable_time_or_data_is_a_value_error(broken: str) -> None:
    # What consumers catch to dead-letter a message: json's and datetime's errors are ValueErrors.
    with pytest.raises(ValueError):  # noqa: PT011 - the parsers' own messages
        CloudEvent.from_fields(EVENT.to_fields() | {broken: "{not parseable"})
