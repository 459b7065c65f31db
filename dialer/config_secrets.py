"""Secrets in the configuration: which keys hold them, and copies of settings with them
hidden (`dialer config check` prints settings; errors quote values). Used by dialer.config,
which re-exports these names."""

from __future__ import annotations

import re
from typing import Any

#: keys whose values are secrets: never printed (config check) nor quoted in errors
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|api_?key|credential|private_?key",
                         re.IGNORECASE)
#: maps whose every value is a secret (login -> password)
_SECRET_MAPS = {("mqtt", "supervisors")}
#: user:password@ in a URL
_URL_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^/@:]*):[^/@]*@")
HIDDEN = "***"


def is_secret_key(key: object) -> bool:
    """Whether a config key names a secret (password, secret, token, ... anywhere in it)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact_url(url: str) -> str:
    """`url` with the password of its user:password@ part replaced by ***."""
    return _URL_PASSWORD.sub(rf"\1:{HIDDEN}@", url)


def redact_secrets(data: Any, _path: tuple[str, ...] = ()) -> Any:
    """A copy of `data` (settings dumped as JSON-like dicts and lists) with every secret
    replaced by "***": values of secret-named keys, login -> password maps and URL
    passwords. Empty values stay empty (so "not set" still shows)."""
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for k, v in data.items():
            if (is_secret_key(k) or _path in _SECRET_MAPS) and v not in ("", None):
                out[k] = HIDDEN if not isinstance(v, dict | list) else redact_all(v)
            else:
                out[k] = redact_secrets(v, (*_path, str(k)))
        return out
    if isinstance(data, list):
        return [redact_secrets(v, _path) for v in data]
    if isinstance(data, str):
        return redact_url(data)
    return data


def redact_all(data: Any) -> Any:
    """Every leaf of `data` replaced by "***" (the structure stays)."""
    if isinstance(data, dict):
        return {k: redact_all(v) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_all(v) for v in data]
    return HIDDEN
