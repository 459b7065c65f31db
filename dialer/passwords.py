"""Password hashes for agents' and web users' passwords: argon2id for new hashes; scrypt
hashes written by older versions (stdlib `hashlib.scrypt`) still verify.

Stored forms (one string each, safe in TOML; `dialer agents hash-password` prints the first):

    $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>      (argon2-cffi's PHC string)
    scrypt$<log2 N>$<r>$<p>$<salt>$<key>                         (older versions)

* argon2id with argon2-cffi's defaults (RFC 9106's second recommended set: 64 MiB, 3 passes,
  4 lanes; some 50-100 ms per check on a small server); only the `id` variant is accepted;
* scrypt: `log2 N`, `r`, `p` - the cost parameters (accepted: log2 N 10-20, r 1-16, p 1-16,
  N*r*128 at most 256 MiB); `salt` and `key` at least 16 bytes each, base64 (standard
  alphabet, padding optional).

`verify_password(candidate, stored)` checks a candidate against either form, or against a
legacy plain-text password (deprecated, MQTT config only; compared in constant time).
Checking costs real CPU: async callers run it in a thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from argon2 import PasswordHasher, extract_parameters
from argon2 import Type as Argon2Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "FORM",
    "check_password_hash",
    "hash_password",
    "is_password_hash",
    "verify_password",
]

PREFIX = "scrypt$"
ARGON2_PREFIX = "$argon2id$"
#: the expected form, as config errors word it
FORM = ("$argon2id$... (or the older scrypt$LOG2N$R$P$SALT$KEY) as printed by "
        "`dialer agents hash-password`")

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory defaults
_MAX_MEM = 256 * 1024 * 1024
#: refuse argon2 parameters that would let a config file make every check take seconds
_ARGON2_MAX_KIB = 1024 * 1024
_ARGON2_MAX_T = 20


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


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _parse_scrypt(stored: str) -> _Scrypt:
    """The parts of a stored scrypt hash; ValueError (never quoting the value) if malformed."""
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


def _check_argon2(stored: str) -> None:
    bad = ValueError(f"expected {FORM}")
    if not isinstance(stored, str) or not stored.startswith(ARGON2_PREFIX):
        raise bad
    try:
        params = extract_parameters(stored)
    except (InvalidHashError, ValueError):
        raise bad from None
    if params.type is not Argon2Type.ID or params.memory_cost > _ARGON2_MAX_KIB \
            or params.time_cost > _ARGON2_MAX_T or params.salt_len < 8 \
            or params.hash_len < 16:
        raise bad


def check_password_hash(stored: str) -> str:
    """`stored` if it is a well-formed hash; ValueError naming the expected form if not."""
    if isinstance(stored, str) and stored.startswith(ARGON2_PREFIX):
        _check_argon2(stored)
    else:
        _parse_scrypt(stored)
    return stored


def is_password_hash(stored: str) -> bool:
    try:
        check_password_hash(stored)
    except ValueError:
        return False
    return True


def hash_password(password: str) -> str:
    """A new salted argon2id hash of `password`, in the stored form above."""
    if not password:
        raise ValueError("empty password")
    return _HASHER.hash(password)


def verify_password(candidate: str, stored: str) -> bool:
    """Whether `candidate` matches `stored`: an argon2id or scrypt hash, or (deprecated) a
    plain password. A `stored` value that starts like a hash but is malformed never matches.
    """
    if stored.startswith(ARGON2_PREFIX):
        try:
            _check_argon2(stored)
            return _HASHER.verify(stored, candidate)
        except (ValueError, VerifyMismatchError, VerificationError, InvalidHashError):
            return False
    if stored.startswith(PREFIX):
        try:
            params = _parse_scrypt(stored)
        except ValueError:
            return False
        return hmac.compare_digest(params.derive(candidate), params.key)
    if not stored or stored.startswith("$argon2"):
        return False  # argon2i / argon2d are not accepted (and are never a plain password)
    # fixed-length digests: the comparison takes the same time whatever the lengths
    return hmac.compare_digest(hashlib.sha256(candidate.encode("utf-8")).digest(),
                               hashlib.sha256(stored.encode("utf-8")).digest())
