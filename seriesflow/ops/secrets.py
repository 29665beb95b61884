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
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a signature, a token or a key (presigned URLs, SAS tokens,
# ?token= / ?api_key= credentials), matched case-insensitively.
_SENSITIVE_QUERY = re.compile(
    r"(?i)^(x-amz-(credential|signature|security-token)|awsaccesskeyid|signature|sig|"
    r"token|access_token|refresh_token|id_token|auth|auth_token|private_token|password|passwd|"
    r"pwd|secret|client_secret|sas|key|api_key|api-key|apikey|access_key|secret_key)$"
)
# Webhook URLs are their own credential: whoever has the path can post. Everything after
# one of these path segments is masked (Slack /services/T/B/X, Discord /api/webhooks/id/token,
# Teams /webhookb2/..., Mattermost and others /hooks/<key>, generic /webhooks/...).
_WEBHOOK_SEGMENTS = frozenset({"services", "webhooks", "webhook", "webhookb2", "hooks"})
# A path segment that looks like a random token (32+ characters of mixed-case letters and
# digits). Ids stay readable: run ids are shorter, hex ids (MLflow runs, sha256) single-case.
_OPAQUE = re.compile(r"^(?=.*[a-z])(?=.*[A-Z])(?=.*\d)[A-Za-z0-9_\-]{32,}$")
# scheme://userinfo@ anywhere in free text; the user name stays, the password goes.
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.I)
# 'KEY:SECRET@bucket' without a scheme: what s3fs/botocore echo in a bucket-name error.
_BARE_USERINFO = re.compile(r"(?<![\w/:])[^\s/'\"@:]+:[^\s/'\"@]+@(?=[a-z0-9.\-_]+)", re.I)
_AWS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
# a URL in free text (up to whitespace or a quote); trailing punctuation is the sentence's
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>`]+", re.I)
_TRAILING = ".,;:!?)]}"


def _mask_userinfo(userinfo: str) -> str:
    user, sep, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def has_credentials(uri: str) -> bool:
    """True when ``uri`` carries anything ``redact_url`` masks: a user:password (or a bare
    token) before the host, a token/key/signature query parameter, a webhook path."""
    return redact_url(uri) != uri


def _redact_query(query: str) -> str:
    """The raw query with sensitive values masked; every other byte left as it was."""
    pairs = []
    for pair in query.split("&"):
        key, sep, _ = pair.partition("=")
        pairs.append(f"{key}={MASK}" if sep and _SENSITIVE_QUERY.match(unquote(key)) else pair)
    return "&".join(pairs)


def _redact_path(path: str) -> str:
    segments = path.split("/")
    for index, segment in enumerate(segments):
        if segment.lower() in _WEBHOOK_SEGMENTS and any(segments[index + 1 :]):
            return "/".join([*segments[: index + 1], MASK])
    return "/".join(MASK if _OPAQUE.match(unquote(s)) else s for s in segments)


def redact_url(uri: str) -> str:
    """``uri`` with the password, token-like query values and webhook paths replaced by
    ``***`` (the rest, host included, stays: a reader still sees where it points)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _redact_plain(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{_mask_userinfo(userinfo)}@{host}"
    query = _redact_query(parts.query) if parts.query else parts.query
    # webhook paths are an http(s) thing: s3://bucket/services/... is only a folder
    web = parts.scheme.lower() in ("http", "https")
    path = _redact_path(parts.path) if web else parts.path
    if (netloc, path, query) == (parts.netloc, parts.path, parts.query):
        return uri  # nothing to hide (and urlunsplit would rewrite sqlite:////abs as //abs)
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _redact_url_in_text(match: re.Match[str]) -> str:
    url = match.group(0)
    stripped = url.rstrip(_TRAILING)
    return redact_url(stripped) + url[len(stripped) :]


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text (an error, a log line) with credentials in any URI it holds masked."""
    text = _URL_IN_TEXT.sub(_redact_url_in_text, text)
    text = _redact_plain(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _redact_plain(text: str) -> str:
    """What ``redact_text`` masks outside a parsable URL: userinfo, bare KEY:SECRET@, AWS ids."""
    text = _USERINFO.sub(
        lambda m: m.group("scheme") + _mask_userinfo(m.group("userinfo")) + "@", text
    )
    text = _BARE_USERINFO.sub(f"{MASK}@", text)
    return _AWS_KEY_ID.sub(lambda m: m.group(1) + "*" * 16, text)


def refuse_credentials(uri: str, setting: str, where: str) -> str:
    """``uri`` unchanged, or a ``ValueError`` (naming the redacted URI) when it holds a
    credential (a password, a token or key in the query, a webhook path)."""
    if has_credentials(uri):
        raise ValueError(
            f"{setting}={redact_url(uri)!r} holds credentials. The config is stored with every "
            f"Prefect run, so put them in the environment instead ({where})"
        )
    return uri
