"""Hashed passwords (issues #12, #13): argon2id for new hashes, older scrypt hashes still
verify, `dialer agents hash-password`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dialer.cli import app


def test_hash_and_verify_round_trip() -> None:
    from dialer.passwords import hash_password, is_password_hash, verify_password

    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert is_password_hash(stored)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored  # salted
    # a legacy plain password is compared as it is (constant time)
    assert verify_password("pw", "pw") and not verify_password("pw", "pW")


def test_older_scrypt_hashes_still_verify() -> None:
    from dialer.passwords import check_password_hash, verify_password

    # made by the previous version's hash_password("change-me")
    old = "scrypt$15$8$1$YNHQNgZ4xa5WaQLHf7YA/Q$IBCoPPTysNXqhmrlOEEFFT/61SZzaW2qSLewrqpv0YA"
    assert check_password_hash(old) == old
    assert verify_password("change-me", old) and not verify_password("change-mE", old)


@pytest.mark.parametrize("bad", ["$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5",
                                 "$argon2id$v=19$m=65536,t=3,p=4$!!$a2V5",
                                 "$argon2id$v=19$m=9999999,t=3,p=4$c2FsdHNhbHRzYWx0$"
                                 "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"])
def test_malformed_or_foreign_argon2_hashes_are_rejected(bad: str) -> None:
    from dialer.passwords import check_password_hash, verify_password

    with pytest.raises(ValueError, match=r"argon2id"):
        check_password_hash(bad)
    assert not verify_password("x", bad)


@pytest.mark.parametrize("bad", ["", "scrypt$", "scrypt$15$8$1$c2FsdA$", "bcrypt$x",
                                 "scrypt$99$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
                                 "scrypt$15$8$1$!!$a2V5"])
def test_malformed_hashes_are_rejected(bad: str) -> None:
    from dialer.passwords import check_password_hash, is_password_hash

    assert not is_password_hash(bad)
    with pytest.raises(ValueError, match=r"scrypt\$"):
        check_password_hash(bad)


def test_hash_password_command_reads_stdin_and_prints_only_the_hash() -> None:
    from dialer.passwords import verify_password

    res = CliRunner().invoke(app, ["agents", "hash-password", "--stdin"],
                             input="s3cret-pw\n")
    assert res.exit_code == 0, res.output
    assert "s3cret-pw" not in res.stdout
    line = res.stdout.strip()
    assert verify_password("s3cret-pw", line)


def test_hash_password_command_prompts_twice_and_refuses_a_mismatch() -> None:
    from dialer.passwords import verify_password

    res = CliRunner().invoke(app, ["agents", "hash-password"], input="pw-one\npw-one\n")
    assert res.exit_code == 0, res.output
    assert "pw-one" not in res.output
    assert verify_password("pw-one", res.stdout.strip().splitlines()[-1])
    res = CliRunner().invoke(app, ["agents", "hash-password"], input="pw-one\npw-two\npw\npx\n"
                             "a\nb\n")
    assert res.exit_code != 0 and "pw-one" not in res.output


def test_hash_password_command_refuses_an_empty_password() -> None:
    res = CliRunner().invoke(app, ["agents", "hash-password", "--stdin"], input="\n")
    assert res.exit_code == 2 and "empty" in res.output
