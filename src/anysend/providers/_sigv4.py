"""AWS Signature Version 4 for ``httpx.Request`` objects, for adapters that call AWS APIs.

A small, dependency-free signer of the header form of SigV4, as AWS documents it in
"Create a signed AWS API request"
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html): a canonical
request, a string to sign with the credential scope, a signing key derived by HMAC-SHA256
from the secret key, the date, the region and the service, and an ``Authorization`` header.

It signs ``host``, ``content-type`` (when present) and every ``x-amz-*`` header, and the
SHA-256 of the body. It is tested against AWS's published SigV4 test suite (``get-vanilla``,
``post-vanilla``, ``post-x-www-form-urlencoded``, the query-order and session-token cases;
credentials ``AKIDEXAMPLE``, time ``20150830T123600Z``, region ``us-east-1``, service
``service``).

Not covered (no anysend adapter needs them): S3's single URI encoding and unsigned or chunked
payloads, query-string (presigned) signatures, and SigV4a.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote

import httpx

__all__ = [
    "ALGORITHM",
    "Credentials",
    "canonical_request",
    "sign",
    "signature",
    "signing_key",
    "string_to_sign",
]

#: The algorithm named in the string to sign and the ``Authorization`` header.
ALGORITHM = "AWS4-HMAC-SHA256"

_SPACES = re.compile(r"\s+")
#: RFC 3986 unreserved characters, the only ones SigV4 leaves unencoded.
_UNRESERVED = "-_.~"


@dataclass(frozen=True)
class Credentials:
    """AWS credentials: an access key pair and, for temporary credentials, a session token.

    Attributes:
        access_key_id: the access key id (``AKIA...`` or ``ASIA...``).
        secret_access_key: the secret access key.
        session_token: the session token of temporary (STS) credentials, sent as
            ``X-Amz-Security-Token``.
    """

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe=_UNRESERVED)


def _canonical_path(raw_path: str) -> str:
    # Every service but S3 encodes each path segment twice: once in the URL (httpx keeps
    # the raw path percent-encoded), once more here. Paths of the AWS JSON and REST APIs
    # anysend calls are plain ASCII, where both encodings leave them unchanged.
    return quote(raw_path or "/", safe="/" + _UNRESERVED)


def _canonical_query(raw_query: str) -> str:
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((_encode(unquote(name)), _encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _signed_names(headers: httpx.Headers) -> list[str]:
    names = {name.lower() for name in headers}
    return sorted(n for n in names if n in ("host", "content-type") or n.startswith("x-amz-"))


def canonical_request(
    method: str, url: httpx.URL, headers: httpx.Headers, payload_hash: str
) -> tuple[str, str]:
    """The canonical request and the signed-headers list for a request.

    Args:
        method: the HTTP method.
        url: the full URL.
        headers: the request headers, ``host`` and ``x-amz-date`` included.
        payload_hash: the hex SHA-256 of the body.

    Returns:
        ``(canonical_request, signed_headers)``.
    """
    names = _signed_names(headers)
    lines = []
    for name in names:
        values = [_SPACES.sub(" ", value.strip()) for value in headers.get_list(name)]
        lines.append(f"{name}:{','.join(values)}\n")
    signed = ";".join(names)
    request = "\n".join(
        [
            method.upper(),
            _canonical_path(url.raw_path.decode("ascii").partition("?")[0]),
            _canonical_query(url.query.decode("ascii")),
            "".join(lines),
            signed,
            payload_hash,
        ]
    )
    return request, signed


def _scope(when: datetime, region: str, service: str) -> str:
    return f"{when:%Y%m%d}/{region}/{service}/aws4_request"


def string_to_sign(canonical: str, when: datetime, region: str, service: str) -> str:
    """The string to sign: algorithm, time, credential scope and the canonical request's hash."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return "\n".join([ALGORITHM, f"{when:%Y%m%dT%H%M%SZ}", _scope(when, region, service), digest])


def signing_key(secret_access_key: str, when: datetime, region: str, service: str) -> bytes:
    """The key derived from the secret for one day, region and service."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), f"{when:%Y%m%d}")
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def signature(secret_access_key: str, text: str, when: datetime, region: str, service: str) -> str:
    """The hex signature of a string to sign."""
    key = signing_key(secret_access_key, when, region, service)
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    request: httpx.Request,
    credentials: Credentials,
    *,
    region: str,
    service: str,
    when: datetime,
) -> httpx.Request:
    """Sign ``request`` in place and return it.

    Sets ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session token) and
    ``Authorization``. The body must already be set (``httpx.Request(content=...)``).

    Args:
        request: the request to sign.
        credentials: the AWS credentials.
        region: the region of the endpoint, such as ``"eu-west-1"``.
        service: the signing name of the service, such as ``"ses"``.
        when: the signing time (naive values are taken as UTC).
    """
    moment = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    request.headers["X-Amz-Date"] = f"{moment:%Y%m%dT%H%M%SZ}"
    if credentials.session_token:
        request.headers["X-Amz-Security-Token"] = credentials.session_token
    payload_hash = hashlib.sha256(request.content).hexdigest()
    canonical, signed = canonical_request(
        request.method, request.url, request.headers, payload_hash
    )
    text = string_to_sign(canonical, moment, region, service)
    value = signature(credentials.secret_access_key, text, moment, region, service)
    request.headers["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{_scope(moment, region, service)}, "
        f"SignedHeaders={signed}, Signature={value}"
    )
    return request
