"""Dead letters on NATS JetStream: the `<topic>.dead-letter` stream, entries by sequence."""

from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from core.jetstream import (
    CE_PREFIX,
    CONTENT_TYPE,
    MSG_ID,
    JetStream,
    dead_letter_stream,
    dead_letter_subject,
    to_fields,
)


class JetStreamDeadLetters:
    def __init__(self, jetstream: JetStream) -> None:
        self._jetstream = jetstream

    async def entries(self, stream: str, count: int = 100) -> list[dict[str, str]]:
        letters: list[dict[str, str]] = []
        sequence = 1
        while len(letters) < count:
            message = await self._get(stream, sequence, following=True)
            if message is None or message.seq is None:
                break
            letters.append(_letter(message))
            sequence = message.seq + 1
        return letters

    async def entry(self, stream: str, entry_id: str) -> dict[str, str] | None:
        message = await self._get(stream, int(entry_id))
        return None if message is None else _letter(message)

    async def replay(self, stream: str, entry_id: str) -> str | None:
        """Publish the original message again, then drop the dead letter.

        Its `Nats-Msg-Id` is new, or JetStream would drop it as a copy of the first delivery;
        the event keeps its id, so consumers that already applied it see a duplicate.
        """
        message = await self._get(stream, int(entry_id))
        if message is None:
            return None
        original = {
            name: value
            for name, value in (message.headers or {}).items()
            if name.startswith(CE_PREFIX) or name == CONTENT_TYPE
        }
        original[MSG_ID] = f"{original.get(CE_PREFIX + 'id', stream)}:replay:{entry_id}"
        js = await self._jetstream.context()
        await self._jetstream.ensure_topic_stream(stream)
        acknowledgement = await js.publish(stream, message.data or b"", headers=original)
        await js.delete_msg(dead_letter_stream(stream), int(entry_id))
        return str(acknowledgement.seq)

    async def _get(
        self, stream: str, sequence: int, *, following: bool = False
    ) -> RawStreamMsg | None:
        js = await self._jetstream.context()
        try:
            if following:  # the first one at or after `sequence`, skipping replayed ones
                subject = dead_letter_subject(stream)
                return await js.get_msg(dead_letter_stream(stream), sequence, subject, next=True)
            return await js.get_msg(dead_letter_stream(stream), sequence)
        except NotFoundError:  # no such entry, or no dead letters yet
            return None


def _letter(message: RawStreamMsg) -> dict[str, str]:
    headers = message.headers or {}
    try:
        fields = to_fields(headers, message.data or b"")
    except UnicodeDecodeError:
        fields = {"data": repr(message.data)}
    dead = {name: value for name, value in headers.items() if name.startswith("dlq_")}
    return {"entry_id": str(message.seq), **fields, **dead}
