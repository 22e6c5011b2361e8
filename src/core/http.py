"""HTTP conditional-request helpers: ETags derived from a row's version."""

from typing import Annotated

from fastapi import Depends, Header, Request

from core.errors import PreconditionFailedError, PreconditionRequiredError
from core.resources import resources_of


def etag_for(version: int) -> str:
    return f'"{version}"'


def none_match(if_none_match: str | None, version: int) -> bool:
    """False when `If-None-Match` names the current ETag (the client's copy is fresh).

    Weak comparison (RFC 9110 13.1.2): `W/"3"` matches `"3"`.
    """
    if if_none_match is None:
        return True
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return not ({"*", etag_for(version)} & candidates)


def check_if_match(if_match: str | None, version: int) -> None:
    """Raise 412 unless `If-Match` is absent, `*`, or names the current version's ETag.

    Strong comparison (RFC 9110 13.1.1): a weak tag `W/"3"` never matches.
    """
    if if_match is None:
        return
    candidates = {tag.strip() for tag in if_match.split(",")}
    if "*" in candidates or etag_for(version) in candidates:
        return
    msg = f"If-Match {if_match} does not match the current ETag {etag_for(version)}"
    raise PreconditionFailedError(msg)


async def if_match_header(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            description="The ETag last seen; a stale one is refused with 412, none with 428 "
            "where the settings require it (`http.require_if_match`)."
        ),
    ] = None,
) -> str | None:
    """`If-Match`, refused when missing where the settings require it: a change made without
    knowing the current version could silently undo another's."""
    if if_match is None and resources_of(request).settings.if_match_required:
        msg = "send If-Match with the ETag last seen (GET the resource for it)"
        raise PreconditionRequiredError(msg)
    return if_match


IfMatchDep = Annotated[str | None, Depends(if_match_header)]
