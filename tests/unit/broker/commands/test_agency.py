"""``isa-broker agency add|announce|revoke`` and ``serve`` argument handling, through main()."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.cli import main
from broker.config import load_broker_config, verify_rabbit_password
from broker.fedstate import FederationLayout, announcement_json, load_state
from federation.canonical import b64url_encode
from federation.keys import SigningKey
from tests.unit.broker.conftest import NOW
from tests.unit.broker.test_agency import announcement, csr_for, manifest_of


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), clock=lambda: NOW)
    out, err = capsys.readouterr()
    return code, out, err


class TestAgencyAddCommand:
    def test_prints_the_broker_password_once_and_stores_its_hash(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 0; the printed password verifies against the stored hash."""
        key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, out, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", f"--public-key={key}",
        )  # fmt: skip
        password = out.splitlines()[2].strip()
        entry = next(a for a in load_broker_config(layout.broker_toml).agencies
                     if a.id == "syn-clinic")  # fmt: skip
        assert code == 0
        assert verify_rabbit_password(password, entry.password_hash)
        assert "manifest serial 2 written" in out

    def test_a_key_beginning_with_a_dash_is_accepted_after_an_equals_sign(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One key in 64 begins with '-' in base64url; ``--public-key=KEY`` still takes it
        (a test that passed keys as a separate argument failed that often)."""
        key = ""
        while not key.startswith("-"):
            key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, out, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", f"--public-key={key}",
        )  # fmt: skip
        assert (code, "manifest serial 2 written" in out) == (0, True)

    def test_accepts_a_certificate_request_file(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--certificate-request certifies the key in the request."""
        private = Ed25519PrivateKey.generate()
        request = layout.root / "syn-clinic.csr"
        request.write_bytes(csr_for("syn-clinic", private))
        code, _out, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", "--certificate-request", str(request),
        )  # fmt: skip
        identity = manifest_of(layout).signing_key_of("syn-clinic")
        assert code == 0
        assert identity is not None
        assert bytes(identity.verify_key) == private.public_key().public_bytes_raw()

    def test_password_file_holds_the_password_and_stdout_does_not(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--password-file: a 0600 file whose password verifies; stdout names only the file."""
        secret = layout.root / "syn-clinic.password"
        key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, out, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", f"--public-key={key}", "--password-file", str(secret),
        )  # fmt: skip
        password = secret.read_text().strip()
        entry = next(a for a in load_broker_config(layout.broker_toml).agencies
                     if a.id == "syn-clinic")  # fmt: skip
        assert code == 0
        assert verify_rabbit_password(password, entry.password_hash)
        assert (secret.stat().st_mode & 0o777, password in out) == (0o600, False)

    def test_an_existing_password_file_is_refused_before_the_agency_is_added(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An existing --password-file: exit 1, the file untouched, no agency added."""
        secret = layout.root / "taken"
        secret.write_text("kept\n")
        key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, _, err = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", f"--public-key={key}", "--password-file", str(secret),
        )  # fmt: skip
        assert (code, secret.read_text()) == (1, "kept\n")
        assert "already exists" in err
        assert load_state(layout).agency("syn-clinic") is None

    def test_generate_writes_a_dev_agency(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--generate prints where the config is and publishes the key in the manifest."""
        code, out, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", "--generate",
        )  # fmt: skip
        entry = manifest_of(layout).agency("syn-clinic")
        assert code == 0
        assert str(layout.agency_dir("syn-clinic") / "agent.toml") in out
        assert entry is not None
        assert len(entry.announcements) == 1

    def test_add_names_the_broker_user_by_the_bare_id_regression(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The new agency's broker user carries the federation's prefix from broker.toml."""
        code, _, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", "--generate",
        )  # fmt: skip
        entry = manifest_of(layout).agency("syn-clinic")
        assert (code, entry and entry.broker_user) == (0, "syn-unit-never-provisioned.syn-clinic")

    def test_generate_takes_a_broker_user_with_the_prefix(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--broker-user combines with --generate; the user keeps the federation's prefix."""
        user = "syn-unit-never-provisioned.clinic-x"
        code, _, _ = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", "--generate", "--broker-user", user,
        )  # fmt: skip
        entry = manifest_of(layout).agency("syn-clinic")
        assert (code, entry and entry.broker_user) == (0, user)

    def test_a_broker_user_without_the_prefix_is_refused(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A user outside the federation's prefix could be another federation's: exit 1."""
        key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, _, err = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "SYN Clinic", f"--public-key={key}", "--broker-user", "assist",
        )  # fmt: skip
        assert code == 1
        assert "does not start with user_prefix" in err
        assert load_state(layout).agency("syn-clinic") is None

    def test_a_bad_public_key_is_a_diagnosis_not_a_traceback(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 1 with one 'error:' line."""
        code, _, err = run(
            capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "N", "--public-key", "abc",
        )  # fmt: skip
        assert code == 1
        assert err.startswith("error: --public-key")
        assert "Traceback" not in err

    def test_a_missing_federation_directory_is_a_diagnosis(
        self, tmp_path: object, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Pointing at a directory that is not a federation says so."""
        key = b64url_encode(bytes(SigningKey.generate().verify_key))
        code, _, err = run(
            capsys, "agency", "add", "--federation", f"{tmp_path}/none", "--id", "syn-clinic",
            "--name", "N", f"--public-key={key}",
        )  # fmt: skip
        assert (code, "not a federation directory" in err) == (1, True)


class TestAgencyAddParser:
    @pytest.mark.parametrize(
        "pair",
        [("--public-key=AAAA", "--generate"), ("--certificate-request=x.csr", "--generate"),
         ("--public-key=AAAA", "--certificate-request=x.csr")],
    )  # fmt: skip
    def test_two_key_sources_are_refused_by_the_parser(
        self, pair: tuple[str, str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The key options exclude each other: argparse says so and exits 2."""
        argv = ["agency", "add", "--federation", "f", "--id", "x-y", "--name", "X", *pair]
        with pytest.raises(SystemExit) as exited:
            main(argv, clock=lambda: NOW)
        assert exited.value.code == 2
        assert "not allowed with argument" in capsys.readouterr().err

    def test_no_key_source_is_refused_by_the_parser(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """One of the three key options is required."""
        with pytest.raises(SystemExit) as exited:
            main(["agency", "add", "--federation", "f", "--id", "x-y", "--name", "X"])
        assert exited.value.code == 2
        assert "one of the arguments --public-key --certificate-request --generate" in (
            capsys.readouterr().err
        )

    def test_help_shows_which_options_exclude_each_other(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--help shows the three key options as one exclusive group, titled so."""
        with pytest.raises(SystemExit):
            main(["agency", "add", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(--public-key PUBLIC_KEY | --certificate-request FILE | --generate)" in text
        assert "exactly one; these options exclude each other" in text


class TestAgencyAnnounceCommand:
    def test_accepts_the_agencys_announcement_file(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str], tmp_path: object
    ) -> None:
        """The file an agency sends is verified and published."""
        own = SigningKey.generate()
        key = b64url_encode(bytes(own.verify_key))
        run(capsys, "agency", "add", "--federation", str(layout.root), "--id", "syn-clinic",
            "--name", "C", f"--public-key={key}")  # fmt: skip
        note = announcement(own, "syn-clinic", days=3650)
        path = layout.root / "incoming.json"
        path.write_bytes(announcement_json(note))
        code, out, _ = run(capsys, "agency", "announce", "--federation", str(layout.root),
                           str(path))  # fmt: skip
        assert code == 0
        assert f"key {note.kid} of syn-clinic" in out

    def test_an_unreadable_file_is_a_diagnosis(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A missing file: exit 1, no traceback."""
        code, _, err = run(capsys, "agency", "announce", "--federation", str(layout.root),
                           str(layout.root / "missing.json"))  # fmt: skip
        assert (code, err.startswith("error:"), "Traceback" in err) == (1, True, False)


class TestAgencyRevokeCommand:
    def test_revokes_and_points_at_provisioning(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 0; the state is revoked and the output names the provision step."""
        code, out, _ = run(capsys, "agency", "revoke", "--federation", str(layout.root),
                           "--id", "assist", "--reason", "SYN test")  # fmt: skip
        agency = load_state(layout).agency("assist")
        assert code == 0
        assert agency is not None
        assert agency.revoked_at is not None
        assert "isa-broker provision --config" in out

    def test_requires_a_reason(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--reason is mandatory (argparse exits 2)."""
        with pytest.raises(SystemExit) as exited:
            main(["agency", "revoke", "--federation", str(layout.root), "--id", "assist"])
        assert exited.value.code == 2


class TestServeCommand:
    @pytest.mark.parametrize("listen", ["8440", "host:", ":8440", "h:99999", "h:port"])
    def test_refuses_a_malformed_listen_address(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str], listen: str
    ) -> None:
        """--listen must be HOST:PORT."""
        code, _, err = run(capsys, "serve", "--federation", str(layout.root), "--listen", listen)
        assert (code, "expected HOST:PORT" in err) == (1, True)

    def test_refuses_a_directory_without_a_manifest(
        self, layout: FederationLayout, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Nothing to serve is an error at start, not an empty server."""
        layout.manifest.unlink()
        code, _, err = run(capsys, "serve", "--federation", str(layout.root))
        assert (code, "nothing to serve" in err) == (1, True)
