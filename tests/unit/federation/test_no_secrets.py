"""No private key material in any repr, str or error message (checked by searching for it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from federation.canonical import b64url_encode
from federation.errors import IsaRelayError
from federation.keyfile import KdfLimits, dump_private_key, load_private_key
from federation.keys import EncryptionKey, Keyring, SigningKey
from tests.unit.federation.helpers import NOW, seed_key

SECRET = seed_key("leak canary")
SIGNING = SigningKey(SECRET)
ENCRYPTION = EncryptionKey.from_secret(SECRET)


def forms(secret: bytes) -> list[str]:
    """Every way the secret could be spelled in text."""
    return [
        secret.hex(),
        secret.hex().upper(),
        b64url_encode(secret),
        repr(secret),
        str(list(secret)),
    ]


def assert_clean(text: str) -> None:
    for form in forms(SECRET) + forms(bytes(SIGNING)):
        assert form not in text


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


class TestReprs:
    def test_encryption_key_repr_and_str_name_only_the_kid(self) -> None:
        """repr/str of an EncryptionKey show the kid, never the secret."""
        assert repr(ENCRYPTION) == f"EncryptionKey(kid={ENCRYPTION.kid!r})"
        assert_clean(repr(ENCRYPTION) + str(ENCRYPTION))

    def test_signing_key_repr_and_str_show_no_secret(self) -> None:
        """PyNaCl's SigningKey repr/str do not show the seed."""
        assert_clean(repr(SIGNING) + str(SIGNING))

    def test_keyring_repr_shows_kids_only(self) -> None:
        """repr/str of a keyring and its entries list kids, not keys."""
        ring = Keyring()
        ring.add(ENCRYPTION, NOW)
        text = (
            repr(ring)
            + str(ring)
            + repr(ring.entries())
            + repr(ring.for_decrypt(ENCRYPTION.kid, NOW))
        )
        assert ENCRYPTION.kid in text
        assert_clean(text)


class TestErrors:
    @pytest.mark.parametrize("passphrase", [None, "wrong"])
    def test_key_file_errors_carry_no_key_bytes(self, passphrase: str | None) -> None:
        """Refusing an encrypted key file leaks neither key nor passphrase in the error chain."""
        data = dump_private_key(SIGNING, "right passphrase", limits=KdfLimits(1, 8192))
        with pytest.raises(IsaRelayError) as info:
            load_private_key(data, mode=0o600, passphrase=passphrase)
        for exc in chain(info.value):
            assert_clean(str(exc) + repr(exc))
            assert "right passphrase" not in str(exc) + repr(exc)
        assert_clean(info.value.diagnostics())

    def test_unsafe_mode_error_carries_no_key_bytes(self) -> None:
        """The permission refusal names the mode, not the key."""
        with pytest.raises(IsaRelayError) as info:
            load_private_key(dump_private_key(ENCRYPTION), mode=0o644)
        assert_clean(str(info.value) + repr(info.value) + info.value.diagnostics())

    def test_corrupted_plain_key_file_error_carries_no_key_bytes(self) -> None:
        """A plain key file with a mismatched public key errors without echoing the secret."""
        data = dump_private_key(ENCRYPTION).replace(b'"public":"', b'"public":"A', 1)
        with pytest.raises(IsaRelayError) as info:
            load_private_key(data, mode=0o600)
        for exc in chain(info.value):
            assert_clean(str(exc) + repr(exc))

    def test_rejected_envelope_error_says_only_its_reason(self) -> None:
        """An envelope refusal for a destroyed key shows the reason and nothing else."""
        ring = Keyring()
        ring.add(ENCRYPTION, NOW - timedelta(days=100))
        ring.destroy_expired(NOW)
        with pytest.raises(IsaRelayError) as info:
            ring.for_decrypt(ENCRYPTION.kid, NOW)
        assert str(info.value) == "envelope rejected"
        assert repr(info.value) == "EnvelopeRejected(reason='key_retired')"
