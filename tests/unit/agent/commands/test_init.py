"""``isa-agent init``: the agency's keys, request, announcement, tokens and config (issue 16.1).

Driven through ``agent.cli.main`` with a fixed clock, against the root certificate of a dev
federation (never provisioned: nothing here talks to RabbitMQ).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main
from agent.config import load_settings
from agent.keystore import read_signing_key
from agent.onboarding import InitPlan, init_agency
from broker.agency import public_key_from_csr
from broker.devfed import create_dev_federation
from broker.fedstate import FederationLayout
from federation import pki
from federation.keys import parse_announcement, verify_announcement

REPO = Path(__file__).resolve().parents[4]
NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
AGENCY = "assist"


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> FederationLayout:
    root = tmp_path_factory.mktemp("init") / "fed"
    create_dev_federation(root, policies=REPO / "policies", now=NOW, agencies=["police-scotland"],
                          vhost="syn-unit-never-provisioned")  # fmt: skip
    return FederationLayout(root)


def argv(layout: FederationLayout, home: Path, *extra: str) -> list[str]:
    fingerprint = pki.fingerprint(pki.certificate_from_bytes(layout.root_cert.read_bytes()))
    return ["init", "--agency", AGENCY, "--dir", str(home),
            "--root-certificate", str(layout.root_cert), "--root-fingerprint", fingerprint,
            "--manifest-file", str(layout.manifest), "--policies", str(layout.policies),
            "--broker-url", "amqp://127.0.0.1:5672/isa-relay", *extra]  # fmt: skip


def init(
    capsys: pytest.CaptureFixture[str], layout: FederationLayout, home: Path, *extra: str
) -> tuple[int, str, str]:
    code = main(argv(layout, home, *extra), clock=lambda: NOW)
    out, err = capsys.readouterr()
    return code, out, err


def tokens(out: str) -> dict[str, str]:
    return {line.split()[1]: line.split()[3] for line in out.splitlines()
            if line.startswith("token ")}  # fmt: skip


def files(home: Path) -> Iterator[Path]:
    return (p for p in home.rglob("*") if p.is_file())


class TestRefusesToOverwrite:
    def test_a_second_init_exits_1_and_keeps_the_signing_key(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A second init refuses, naming the existing files, without a traceback or a change."""
        init(capsys, federation, tmp_path / "a")
        key = (tmp_path / "a" / "keys" / "signing.key").read_bytes()
        code, out, err = init(capsys, federation, tmp_path / "a")
        assert (code, out) == (1, "")
        assert err.startswith("error: already initialised:")
        assert "--force" in err
        assert "Traceback" not in err
        assert (tmp_path / "a" / "keys" / "signing.key").read_bytes() == key

    def test_force_replaces_the_keys_and_the_config(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --force the signing key and the keyring are new and only the new kid remains."""
        init(capsys, federation, tmp_path / "a")
        key = (tmp_path / "a" / "keys" / "signing.key").read_bytes()
        code, _, _ = init(capsys, federation, tmp_path / "a", "--force")
        kids = list((tmp_path / "a" / "keys" / "encryption").glob("*.key"))
        assert code == 0
        assert (tmp_path / "a" / "keys" / "signing.key").read_bytes() != key
        assert len(kids) == 1


class TestTokens:
    def test_each_token_is_printed_once_and_only_its_hash_is_stored(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Two clients: each token once on stdout, its SHA-256 in agent.toml, in no file."""
        code, out, _ = init(capsys, federation, tmp_path / "a", "--client",
                            "case-system:send,receive", "--client", "monitor:admin")  # fmt: skip
        issued = tokens(out)
        clients = load_settings(tmp_path / "a" / "agent.toml", environ={}).api.clients
        stored = {c.name: (c.token_sha256, c.scopes) for c in clients}
        assert code == 0
        assert stored == {
            name: (hashlib.sha256(token.encode()).hexdigest(), scopes)
            for (name, token), scopes in zip(issued.items(), [("send", "receive"), ("admin",)],
                                             strict=True)
        }  # fmt: skip
        assert all(out.count(token) == 1 for token in issued.values())
        assert not [p for p in files(tmp_path / "a")
                    if any(t.encode() in p.read_bytes() for t in issued.values())]  # fmt: skip

    def test_a_client_with_an_unknown_scope_is_refused(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--client cms:write``: exit 1, the scopes named, nothing written."""
        code, _, err = init(capsys, federation, tmp_path / "a", "--client", "cms:write")
        assert code == 1
        assert "send, receive, admin" in err
        assert not (tmp_path / "a").exists()


class TestFiles:
    def test_directories_are_0700_and_files_0600_under_a_permissive_umask(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``init_agency`` (without the CLI's umask 077) makes every dir 0700 and file 0600."""
        root = pki.certificate_from_bytes(federation.root_cert.read_bytes())
        plan = InitPlan(
            agency=AGENCY, home=tmp_path / "a", root_certificate=federation.root_cert,
            root_fingerprint=pki.fingerprint(root), broker_urls=("amqp://127.0.0.1/x",),
            broker_user=AGENCY, policies_dir=federation.policies,
            clients=(("case-system", ("send",)),), manifest_file=federation.manifest,
        )  # fmt: skip
        previous = os.umask(0o022)
        try:
            init_agency(plan, NOW)
        finally:
            os.umask(previous)
        modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
                 for p in [tmp_path / "a", *(tmp_path / "a").rglob("*")]}  # fmt: skip
        assert modes == {name: 0o700 if (tmp_path / name).is_dir() else 0o600 for name in modes}
        assert len(modes) == 12  # a/, its 3 files, keys/ (signing, encryption/ with 2), data/ (1)

    def test_the_config_loads_and_names_what_init_made(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The agent's own loader reads agent.toml; its paths are the files init wrote."""
        init(capsys, federation, tmp_path / "a", "--broker-user", "syn-assist")
        settings = load_settings(tmp_path / "a" / "agent.toml", environ={})
        assert settings.agency == AGENCY
        assert settings.keys.signing_key == (tmp_path / "a" / "keys" / "signing.key").resolve()
        assert settings.trust.root_certificate.read_bytes() == federation.root_cert.read_bytes()
        assert settings.trust.manifest_file == federation.manifest.resolve()
        assert (settings.broker.user, settings.broker.password) == ("syn-assist", "")

    def test_without_policies_the_config_reads_its_isas_from_the_manifest(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Issue 15.5: --policies is optional; without it policies_dir is unset (commented)."""
        home = tmp_path / "a"
        dropped = ("--policies", str(federation.policies))
        args = [a for a in argv(federation, home) if a not in dropped]
        assert main(args, clock=lambda: NOW) == 0
        capsys.readouterr()
        assert load_settings(home / "agent.toml", environ={}).trust.policies_dir is None

    def test_a_root_that_does_not_match_the_fingerprint_writes_nothing(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A wrong --root-fingerprint: exit 1 naming the real one, and no directory made."""
        args = argv(federation, tmp_path / "a")
        args[args.index("--root-fingerprint") + 1] = "0" * 64
        code = main(args, clock=lambda: NOW)
        err = capsys.readouterr().err
        assert code == 1
        assert "not the --root-fingerprint given" in err
        assert not (tmp_path / "a").exists()

    def test_openssls_colon_separated_fingerprint_is_accepted(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``AB:CD:..`` (openssl x509 -fingerprint) pins the same lowercase hex."""
        args = argv(federation, tmp_path / "a")
        at = args.index("--root-fingerprint") + 1
        plain = args[at]
        args[at] = ":".join(plain[i : i + 2] for i in range(0, 64, 2)).upper()
        assert main(args, clock=lambda: NOW) == 0
        settings = load_settings(tmp_path / "a" / "agent.toml", environ={})
        assert settings.trust.root_fingerprint == plain


class TestRequestAndAnnouncement:
    def test_the_request_is_what_agency_add_accepts_for_the_signing_key(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The CSR's key (checked as the operator checks it) is the key file's key."""
        init(capsys, federation, tmp_path / "a")
        key = read_signing_key(tmp_path / "a" / "keys" / "signing.key")
        requested = public_key_from_csr((tmp_path / "a" / "assist.csr.pem").read_bytes(), AGENCY)
        assert bytes(requested) == bytes(key.verify_key)

    def test_the_announcement_is_signed_by_the_signing_key_from_now(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The first announcement verifies, names the keyring's kid, and starts at ``now``."""
        init(capsys, federation, tmp_path / "a")
        key = read_signing_key(tmp_path / "a" / "keys" / "signing.key")
        (path,) = (tmp_path / "a" / "data" / "announcements").glob("*.json")
        note = verify_announcement(parse_announcement(json.loads(path.read_text())),
                                   key.verify_key)  # fmt: skip
        (key_file,) = (tmp_path / "a" / "keys" / "encryption").glob("*.key")
        assert (note.agency, note.kid, note.not_before) == (AGENCY, key_file.stem,
                                                            "2026-11-24T12:00:00Z")  # fmt: skip


class TestImportKey:
    def test_an_openssl_style_pem_key_becomes_the_agents_signing_key(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Regression (agent refused an openssl key): a PKCS#8 PEM is imported and loads."""
        private = Ed25519PrivateKey.generate()
        pem = tmp_path / "key.pem"
        pem.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))  # fmt: skip
        code, _, _ = init(capsys, federation, tmp_path / "a", "--import-key", str(pem))
        key = read_signing_key(tmp_path / "a" / "keys" / "signing.key")
        assert code == 0
        assert bytes(key.verify_key) == private.public_key().public_bytes_raw()

    def test_an_encrypted_pem_is_refused_saying_how_to_decrypt_it(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A passphrase-protected PEM: exit 1 with the openssl command, nothing written."""
        pem = tmp_path / "key.pem"
        pem.write_bytes(Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"SYN-passphrase")))  # fmt: skip
        code, _, err = init(capsys, federation, tmp_path / "a", "--import-key", str(pem))
        assert code == 1
        assert "is encrypted: decrypt it first (openssl pkey" in err
        assert not (tmp_path / "a").exists()

    def test_a_key_that_is_not_ed25519_is_refused(
        self, federation: FederationLayout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A P-256 PEM: exit 1 saying the key must be Ed25519, nothing written."""
        pem = tmp_path / "key.pem"
        pem.write_bytes(generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        code, _, err = init(capsys, federation, tmp_path / "a", "--import-key", str(pem))
        assert code == 1
        assert "must be Ed25519" in err
        assert not (tmp_path / "a").exists()
