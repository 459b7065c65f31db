"""Agent password hashes: scrypt (Python's stdlib `hashlib.scrypt`), no extra dependency.

Stored form (one string, safe in TOML; `dialer agents hash-password` prints one):

    scrypt$<log2 N>$<r>$<p>$<salt>$<key>

* `log2 N`, `r`, `p` - the scrypt cost parameters (we write 15, 8, 1: N = 32768, 32 MiB of
  memory and some 50-100 ms per check; accepted: log2 N 10-20, r 1-16, p 1-16, N*r*128 at
  most 256 MiB);
* `salt` - at least 16 random bytes, `key` - the derived key, at least 16 bytes (we write
  32), both base64 (standard alphabet, padding optional).

`verify_password(candidate, stored)` checks a candidate against such a hash, or against a
legacy plain-text password (deprecated; compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = [
    "FORM",
    "check_password_hash",
    "hash_password",
    "is_password_hash",
    "verify_password",
]

PREFIX = "scrypt$"
#: the expected form, as config errors word it
FORM = "scrypt$LOG2N$R$P$SALT$KEY as printed by `dialer agents hash-password`"

_LOG2_N, _R, _P = 15, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_MAX_MEM = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Scrypt:
    log2_n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def derive(self, password: str) -> bytes:
        n = 1 << self.log2_n
        return hashlib.scrypt(password.encode("utf-8"), salt=self.salt, n=n, r=self.r,
                              p=self.p, dklen=len(self.key),
                              maxmem=2 * 128 * self.r * n + 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _parse(stored: str) -> _Scrypt:
    """The parts of a stored hash; ValueError (never quoting the value) if malformed."""
    bad = ValueError(f"expected {FORM}")
    if not isinstance(stored, str) or not stored.startswith(PREFIX):
        raise bad
    parts = stored.split("$")
    if len(parts) != 6:
        raise bad
    try:
        log2_n, r, p = (int(x) for x in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        raise bad from None
    if not (10 <= log2_n <= 20 and 1 <= r <= 16 and 1 <= p <= 16):
        raise bad
    if 128 * r * (1 << log2_n) > _MAX_MEM or len(salt) < 16 or len(key) < 16:
        raise bad
    return _Scrypt(log2_n, r, p, salt, key)


def check_password_hash(stored: str) -> str:
    """`stored` if it is a well-formed hash; ValueError naming the expected form if not."""
    _parse(stored)
    return stored


def is_password_hash(stored: str) -> bool:
    try:
        _parse(stored)
    except ValueError:
        return False
    return True


def hash_password(password: str) -> str:
    """A new salted scrypt hash of `password`, in the stored form above."""
    if not password:
        raise ValueError("empty password")
    params = _Scrypt(_LOG2_N, _R, _P, secrets.token_bytes(_SALT_BYTES), b"\0" * _KEY_BYTES)
    key = params.derive(password)
    return f"{PREFIX}{_LOG2_N}${_R}${_P}${_b64(params.salt)}${_b64(key)}"


def verify_password(candidate: str, stored: str) -> bool:
    """Whether `candidate` matches `stored`: a scrypt hash, or (deprecated) a plain password.

    A `stored` value that starts like a hash but is malformed never matches.
    """
    if stored.startswith(PREFIX):
        try:
            params = _parse(stored)
        except ValueError:
            return False
        return hmac.compare_digest(params.derive(candidate), params.key)
    if not stored:
        return False
    # fixed-length digests: the comparison takes the same time whatever the lengths
    return hmac.compare_digest(hashlib.sha256(candidate.encode("utf-8")).digest(),
                               hashlib.sha256(stored.encode("utf-8")).digest())
