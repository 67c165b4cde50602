"""GET and HEAD /ipfs/{cid}: the IPFS Trustless Gateway's wire format over
chalicelib.cold.retrieval (an extension beyond the Pinning Service API).

The response type comes from `format` (car, raw), which wins over `Accept`
as the spec says, else from the best `Accept` type this service serves.
API Gateway turns a Lambda's base64 body back into bytes only when the
request's *first* Accept type is one of the API's binary media types, so
that first type must be application/vnd.ipld.car or application/vnd.ipld.raw
(406 otherwise, a request without Accept too) even when `format` chooses.

Answers are private to the tenant: `Cache-Control: private` where the spec
says `public` for immutable content, since a shared cache would hand one
tenant's content to anyone holding its URL.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from chalice import Response

from chalicelib.api.errors import ApiError, bad_request, not_found
from chalicelib.cold.archive_objects import ArchiveThawing
from chalicelib.cold.retrieval import (
    Content,
    Format,
    IntegrityFailure,
    NotPinned,
    Redirect,
    Retrieval,
    RetrievalUnavailable,
    Retriever,
    Scope,
    TooLarge,
    Unverifiable,
)
from chalicelib.metrics import emit_metrics
from chalicelib.pins.cids import InvalidCid, parse_cid

logger = logging.getLogger("pinning.api")

CAR = "application/vnd.ipld.car"
RAW = "application/vnd.ipld.raw"
# What a CAR answer is: CARv1, blocks in depth-first order, each once (Kubo's
# dag/export order, which the archives keep).
CAR_TYPE = f"{CAR}; version=1; order=dfs; dups=n"
_MEDIA = {Format.CAR: CAR, Format.RAW: RAW}
_FORMATS = {"car": Format.CAR, "raw": Format.RAW}
# Formats of the path gateway this service does not produce (406, not 400).
_OTHER_FORMATS = frozenset({"dag-json", "dag-cbor", "json", "cbor", "tar", "ipns-record"})
# A CAR variant's parameters and the values this service's CARs satisfy.
_CAR_PARAMS = {"version": frozenset({"1"}), "order": frozenset({"dfs", "unk"}), "dups": frozenset({"n"})}
_IMMUTABLE = "private, max-age=29030400, immutable"
_MAX_FILENAME = 255


@dataclass(frozen=True)
class GatewayRequest:
    retrieval: Retrieval
    cid: str  # as in the path
    filename: str | None
    # How the request named its format (for Content-Location): None when by Accept alone.
    format_param: str | None
    scope_param: str | None


def parse_request(
    tenant_id: str, cid: str, params: Mapping[str, str] | None, headers: Mapping[str, str]
) -> GatewayRequest:
    """The retrieval a request asks for; ApiError 400 or 406 for one this service cannot answer."""
    params = params or {}
    try:
        cid_key = parse_cid(cid).key
    except InvalidCid as error:
        raise bad_request("INVALID_CID", f"invalid cid {cid[:100]!r}: {error}") from None
    ranges = _accept(headers.get("accept"))
    format_param = params.get("format")
    kind = _format(format_param, ranges)
    if kind is Format.CAR:
        _check_car_params(params, ranges)
    if params.get("entity-bytes") is not None:
        raise bad_request("INVALID_QUERY", "entity-bytes is not supported by this service: ask for the whole entity")
    scope_param = params.get("dag-scope")
    try:
        scope = Scope(scope_param or "all")
    except ValueError:
        raise bad_request("INVALID_QUERY", "dag-scope must be block, entity or all") from None
    filename = params.get("filename")
    if filename is not None and not _safe_filename(filename):
        raise bad_request("INVALID_QUERY", f"filename must be 1 to {_MAX_FILENAME} printable ASCII characters")
    return GatewayRequest(Retrieval(tenant_id, cid_key, kind, scope), cid, filename, format_param, scope_param)


def respond(
    retriever: Retriever,
    request: GatewayRequest,
    method: str,
    if_none_match: str | None,
    metrics_stage: str | None = None,
) -> Response:
    """The answer: 200 with the bytes (HEAD: the headers only, once the tenant's
    pin is found), 304 for a matching If-None-Match, 307 to the archive for a
    DAG over the limit; domain failures as Failure responses (ApiError).
    `metrics_stage`: the stage whose metrics an integrity failure counts in
    (None: none emitted, outside Lambda)."""
    retrieval = request.retrieval
    headers = _content_headers(request)
    try:
        if method == "HEAD" or _matches(if_none_match, headers["ETag"]):
            retriever.pinned(retrieval.tenant_id, retrieval.cid_key)
            return Response(body=b"", status_code=200 if method == "HEAD" else 304, headers={**headers})
        outcome = retriever.retrieve(retrieval)
    except NotPinned:
        raise not_found("no pinned request of yours is for this CID") from None
    except ArchiveThawing as error:
        raise _unavailable("ARCHIVE_THAWING", str(error), error.retry_after_seconds) from None
    except RetrievalUnavailable as error:
        raise _unavailable("SERVICE_UNAVAILABLE", error.details, error.retry_after_seconds) from None
    except TooLarge as error:
        raise ApiError(422, "TOO_LARGE", str(error)) from None
    except Unverifiable as error:
        raise ApiError(422, "UNVERIFIABLE_CONTENT", str(error)) from None
    except IntegrityFailure as error:
        # Stored bytes that do not verify: the operator's alarm (5xx), never the client's fault.
        logger.error("retrieval integrity failure", extra={"cid": retrieval.cid_key, "error": str(error)})
        if metrics_stage is not None:  # alarmed at once: one corrupt copy is not lost among the API's 5xx share
            emit_metrics({"RetrievalIntegrityFailure": (1, "Count")}, metrics_stage, sys.stdout)
        raise ApiError(502, "INTEGRITY_FAILURE", "no stored copy of this content verified; it was not sent") from None
    if isinstance(outcome, Redirect):
        return Response(
            body="", status_code=307, headers={"Location": outcome.url, "Cache-Control": "private, no-store"}
        )
    return _content(outcome, headers)


def _content(content: Content, headers: dict[str, str]) -> Response:
    # Which tier answered (not which node): for the client's and the operator's curiosity.
    tier = "hot" if content.source.startswith("node") else content.source
    return Response(body=content.data, status_code=200, headers={**headers, "X-Served-From": tier})


def _content_headers(request: GatewayRequest) -> dict[str, str]:
    retrieval = request.retrieval
    car = retrieval.format is Format.CAR
    extension = "car" if car else "bin"
    headers = {
        "Content-Type": CAR_TYPE if car else RAW,
        "Content-Disposition": f'attachment; filename="{request.filename or f"{request.cid}.{extension}"}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": _IMMUTABLE,
        "Vary": "Accept",
        # Raw bytes are the block's, byte for byte; a CAR's order may differ between copies.
        "ETag": f'W/"{request.cid}.car.{retrieval.scope.value}"' if car else f'"{request.cid}.raw"',
        "X-Ipfs-Path": f"/ipfs/{request.cid}",
    }
    if request.format_param is None:
        # Relative to /…/ipfs/{cid}: the same resource with its format in the URL, for caches.
        query = f"format={retrieval.format.value}"
        if car and request.scope_param is not None:
            query += f"&dag-scope={retrieval.scope.value}"
        headers["Content-Location"] = f"{request.cid}?{query}"
    return headers


def _unavailable(reason: str, details: str, retry_after: int) -> ApiError:
    return ApiError(503, reason, details, {"Retry-After": str(retry_after)})


# -- content negotiation -------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    media: str
    params: dict[str, str]
    q: float


def _accept(header: str | None) -> list[_Range]:
    if header is None or not header.strip():
        raise _not_acceptable(f"send Accept: {CAR} (a CAR of the DAG) or {RAW} (its root block)")
    ranges = []
    for item in header.split(","):
        media, *pairs = (part.strip() for part in item.split(";"))
        params = {}
        for pair in pairs:
            name, _, value = pair.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            raise bad_request("BAD_REQUEST", f"Accept has a malformed q value in {item.strip()!r}") from None
        ranges.append(_Range(media.lower(), params, q))
    return ranges


def _format(format_param: str | None, ranges: list[_Range]) -> Format:
    if not ranges or ranges[0].media not in (CAR, RAW):
        raise _not_acceptable(
            f"the first Accept type must be {CAR} or {RAW}: this API's gateway sends binary bodies only then"
        )
    if format_param is not None:
        if format_param in _FORMATS:
            return _FORMATS[format_param]
        if format_param in _OTHER_FORMATS:
            raise _not_acceptable(f"format={format_param} is not served here: only car and raw (verifiable)")
        raise bad_request("INVALID_QUERY", "format must be car or raw")
    wanted = sorted((r for r in ranges if r.q > 0 and r.media in (CAR, RAW)), key=lambda r: -r.q)
    for candidate in wanted:
        if candidate.media == RAW or _car_variant_served(candidate.params):
            return Format.RAW if candidate.media == RAW else Format.CAR
    raise _not_acceptable(f"no acceptable variant: CARs here are {CAR_TYPE}")


def _check_car_params(params: Mapping[str, str], ranges: list[_Range]) -> None:
    """The CAR variant asked for (car-version, car-order, car-dups, else the
    best CAR type of Accept) must be the one served."""
    cars = sorted((r for r in ranges if r.media == CAR and r.q > 0), key=lambda r: -r.q)
    asked: dict[str, str] = next(
        (r.params for r in cars if _car_variant_served(r.params)), cars[0].params if cars else {}
    )
    for name in _CAR_PARAMS:
        value = params.get(f"car-{name}")
        if value is not None:
            asked = {**asked, name: value}
    if not _car_variant_served(asked):
        raise _not_acceptable(f"the CAR variant asked for is not served: CARs here are {CAR_TYPE}")


def _car_variant_served(params: Mapping[str, str]) -> bool:
    return all(value in _CAR_PARAMS[name] for name, value in params.items() if name in _CAR_PARAMS)


def _not_acceptable(details: str) -> ApiError:
    return ApiError(406, "NOT_ACCEPTABLE", details)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2)."""
    if if_none_match is None:
        return False
    opaque = etag.removeprefix("W/")
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == opaque for tag in tags)


def _safe_filename(name: str) -> bool:
    return 0 < len(name) <= _MAX_FILENAME and all(" " <= char <= "~" and char not in '"\\' for char in name)
