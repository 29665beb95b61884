"""Credentials in URIs: find them, refuse them in the config, redact them everywhere else.

A tracking URI (``https://user:password@mlflow.internal``, ``postgresql://svc:pw@db/m``)
or an object-store URL may carry a password. The config is the retrain flow's parameter,
and Prefect stores parameters with every run, so the config refuses URIs with
credentials (``refuse_credentials``): they belong in the environment
(``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, ``AWS_*``). A URI that
comes from the environment is shown only through ``redact_url``; free text that may echo
one (an exception message) goes through ``redact_text`` before it is logged or stored.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a signature or a token (presigned URLs, SAS tokens).
_SENSITIVE_QUERY = re.compile(
    r"(?i)^(x-amz-(credential|signature|security-token)|awsaccesskeyid|signature|sig|"
    r"token|access_token|password|passwd|secret|sas)$"
)
# scheme://userinfo@ anywhere in free text; the user name stays, the password goes.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.I)
# 'KEY:SECRET@bucket' without a scheme: what s3fs/botocore echo in a bucket-name error.
_BARE_USERINFO = re.compile(r"(?<![\w/:])[^\s/'\"@:]+:[^\s/'\"@]+@(?=[a-z0-9.\-_]+)", re.I)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def has_credentials(uri: str) -> bool:
    """True when ``uri`` carries a user:password (or a bare token) before the host."""
    try:
        return "@" in urlsplit(uri).netloc
    except ValueError:
        return False


def redact_url(uri: str) -> str:
    """``uri`` with the password and signature-like query values replaced by ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    netloc, query = parts.netloc, parts.query
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    if "@" not in netloc and not any(_SENSITIVE_QUERY.match(k) for k, _ in pairs):
        return uri  # nothing to hide (and urlunsplit would rewrite sqlite:////abs as //abs)
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{_mask_userinfo(userinfo)}@{host}"
    if pairs:
        query = urlencode(
            [(k, MASK if _SENSITIVE_QUERY.match(k) else v) for k, v in pairs], safe="*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (an error, a log line) with credentials in any URI it holds masked."""
    text = _USERINFO.sub(
        lambda m: m.group("scheme") + _mask_userinfo(m.group("userinfo")) + "@", text
    )
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    text = _AWS_KEY_ID.sub(lambda m: m.group(1) + "*" * 16, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def refuse_credentials(uri: str, setting: str, where: str) -> str:
    """``uri`` unchanged, or a ``ValueError`` (naming the redacted URI) when it holds a password."""
    if has_credentials(uri):
        raise ValueError(
            f"{setting}={redact_url(uri)!r} holds credentials. The config is stored with every "
            f"Prefect run, so put them in the environment instead ({where})"
        )
    return uri
