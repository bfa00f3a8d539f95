"""What counts as a credential inside a property that is not a secret as a whole.

Header maps and URLs hold credentials among ordinary values: an ``X-Api-Key`` header beside a
``Content-Type``, a password in ``https://user:pass@host`` or a ``?token=`` in a query string.
These functions recognise them (names compared case-insensitively) and mask or restore them,
so the API never shows them and an update that sends the masked form back keeps them.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

#: What the API shows instead of a secret value.
MASK = "********"

# A name suggesting a credential: authorization, cookies, tokens, keys, secrets, passwords,
# signatures, sessions (X-Api-Key, X-Auth-Token, access_token, sig, PRIVATE-TOKEN, ...).
_CREDENTIAL_NAME = re.compile(
    r"auth|cookie|token|key|secret|passw|pwd|credential|session|signature|^sig$|^x-amz-|jwt|bearer",
    re.IGNORECASE,
)


#: The pattern of :func:`is_credential_name`, for clients that hide such values as they are typed
#: (a JavaScript regular expression too, used case-insensitively).
CREDENTIAL_NAME_PATTERN = _CREDENTIAL_NAME.pattern


def is_credential_name(name: str) -> bool:
    """True when a header or query-parameter name suggests its value is a credential."""
    return bool(_CREDENTIAL_NAME.search(name))


def credential_values(headers: dict[str, str]) -> tuple[str, ...]:
    """The values of the credential-like headers among ``headers``: scrubbed from every message."""
    return tuple(value for name, value in headers.items() if is_credential_name(name))


def url_has_credentials(url: str) -> bool:
    """True when ``url`` carries a user or password, or a credential-like query parameter."""
    parts = urlsplit(url)
    return bool(parts.username or parts.password) or any(
        is_credential_name(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True))


def mask_url(url: str) -> str:
    """``url`` with its user information and credential-like query values replaced by the mask."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = [(name, MASK if is_credential_name(name) else value)
             for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, _encode(query) if query else parts.query, parts.fragment))


def unmask_url(url: str, stored: str) -> str:
    """``url`` with each masked part (the user information, a query value) taken from ``stored``.

    Lets a client send back what the API showed and keep the stored credentials, while
    changing the rest of the URL. Raises ``ValueError`` when a masked part has no stored value.
    """
    if MASK not in url:
        return url
    parts, old = urlsplit(url), urlsplit(stored)
    netloc = parts.netloc
    if netloc.startswith(f"{MASK}@"):
        if "@" not in old.netloc:
            raise ValueError("its user information is masked but none is stored")
        netloc = f"{old.netloc.rsplit('@', 1)[0]}@{netloc.split('@', 1)[1]}"
    old_query = dict(parse_qsl(old.query, keep_blank_values=True))
    query = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if value == MASK:
            if name not in old_query:
                raise ValueError(f"its query parameter '{name}' is masked but none is stored")
            value = old_query[name]
        query.append((name, value))
    return urlunsplit((parts.scheme, netloc, parts.path, _encode(query) if query else parts.query, parts.fragment))


def _encode(query: list[tuple[str, str]]) -> str:
    # The mask stays readable (no %2A escapes) so users recognise it.
    return urlencode(query, quote_via=quote, safe="*")
