"""amqps with client certificates (SASL EXTERNAL) on a test-owned RabbitMQ node.

The node listens only on TLS, asks every client for a certificate issued by the federation's
CA (``verify_peer`` + ``fail_if_no_peer_cert``), offers only the EXTERNAL mechanism and takes
the RabbitMQ user name from the certificate's common name (the agency's ``broker_user``). The
users and permissions are made by ``isa-broker provision`` through the node's management API,
so a certificate grants exactly what a password would: its own inbox, the ``isa.messages``
exchange, nothing else; revoking the agency deletes the user and the certificate stops working.

Certificates come from a throw-away ECDSA P-256 CA made with ``cryptography``; see
``certs/README.md`` for why not the federation's Ed25519 root and for the production set-up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.config import broker_config_from_dict
from tests.integration.test_provision import Federation, make_federation
from tests.support.rabbit_node import RabbitNode, free_port, rabbit_node
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

CaKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Issued:
    key: CaKey
    cert: x509.Certificate


def _key(kind: str) -> CaKey:
    return ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else \
        ec.generate_private_key(ec.SECP256R1())


def _sign(builder: x509.CertificateBuilder, key: CaKey) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def make_ca(name: str, kind: str = "ec") -> Issued:
    """A self-signed CA certificate for ``name`` (synthetic)."""
    key = _key(kind)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(hours=1))
               .not_valid_after(NOW + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True))
    return Issued(key, _sign(builder, key))


def issue(ca: Issued, common_name: str, *, server: bool, kind: str = "ec") -> Issued:
    """A leaf certificate: server (SAN localhost/127.0.0.1) or client (CN = broker user)."""
    key = _key(kind)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(hours=1))
               .not_valid_after(NOW + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return Issued(key, _sign(builder, ca.key))


def write(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    """Write ``name.pem`` and ``name.key`` (unencrypted, 0600: test material only)."""
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def node_config(tls: Path, tls_port: int, management_port: int) -> str:
    return "\n".join([
        "listeners.tcp = none",
        f"listeners.ssl.1 = 127.0.0.1:{tls_port}",
        f"ssl_options.cacertfile = {tls / 'ca.pem'}",
        f"ssl_options.certfile = {tls / 'server.pem'}",
        f"ssl_options.keyfile = {tls / 'server.key'}",
        "ssl_options.verify = verify_peer",
        "ssl_options.fail_if_no_peer_cert = true",
        "ssl_options.versions.1 = tlsv1.3",
        "ssl_options.versions.2 = tlsv1.2",
        "auth_mechanisms.1 = EXTERNAL",
        "ssl_cert_login_from = common_name",
        "management.tcp.ip = 127.0.0.1",
        f"management.tcp.port = {management_port}",
        "",
    ])


@dataclass
class TlsFederation:
    node: RabbitNode
    fed: Federation
    tls: Path
    port: int

    def url(self, client: str | None, *, auth: str = "external") -> str:
        """amqps URL for the client certificate ``client`` (files in the tls directory)."""
        query = {"auth": auth, "cafile": str(self.tls / "ca.pem")}
        if client is not None:
            query |= {"certfile": str(self.tls / f"{client}.pem"),
                      "keyfile": str(self.tls / f"{client}.key")}
        return (f"amqps://127.0.0.1:{self.port}/{urllib.parse.quote(self.fed.vhost, safe='')}"
                f"?{urllib.parse.urlencode(query)}")


    def context(self, client: str, maximum: ssl.TLSVersion) -> ssl.SSLContext:
        """A client TLS context with ``client``'s certificate, capped at ``maximum``."""
        context = ssl.create_default_context(cafile=str(self.tls / "ca.pem"))
        context.load_cert_chain(self.tls / f"{client}.pem", self.tls / f"{client}.key")
        context.maximum_version = maximum
        return context


@pytest.fixture(scope="module")
def tls_fed() -> Iterator[TlsFederation]:
    """A TLS-only node, provisioned for two agencies, each with a client certificate."""
    base = Path(tempfile.mkdtemp(prefix="isa-rabbit-tls-"))
    tls = base / "tls"
    tls.mkdir()
    tls_port, management_port = free_port(), free_port()
    server = RabbitServer(amqp_url=f"amqps://127.0.0.1:{tls_port}/",
                          management_url=f"http://127.0.0.1:{management_port}",
                          admin_user="guest", admin_password="guest")
    fed = make_federation(server, base)
    ca, rogue_ca = make_ca("ISA Relay test CA (synthetic)"), make_ca("Rogue CA (synthetic)")
    ed_ca = make_ca("ISA Relay Ed25519 test CA (synthetic)", "ed25519")
    write(tls, "ca", ca)
    with (tls / "ca.pem").open("ab") as bundle:  # the node trusts both test CAs
        bundle.write(ed_ca.cert.public_bytes(serialization.Encoding.PEM))
    write(tls, "ed25519", issue(ed_ca, fed.a, server=False, kind="ed25519"))
    write(tls, "server", issue(ca, "localhost", server=True))
    for agency in (fed.a, fed.b):
        write(tls, agency, issue(ca, agency, server=False))
    write(tls, "rogue", issue(rogue_ca, fed.a, server=False))
    config = node_config(tls, tls_port, management_port)
    try:
        with rabbit_node(base, config=config,
                         plugins=["rabbitmq_management", "rabbitmq_auth_mechanism_ssl"]) as node:
            code, out = fed.provision()
            assert code == 0, out
            yield TlsFederation(node, fed, tls, tls_port)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def send(
    tf: TlsFederation, sender: str, to: str, body: bytes, *, user_id: str | None = None
) -> None:
    """Publish as ``sender``'s certificate (``user_id`` defaults to the sender)."""
    connection = await aio_pika.connect(tf.url(sender))
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("isa.messages", ensure=False)
        await exchange.publish(aio_pika.Message(body, user_id=user_id or sender),
                               routing_key=to)


async def receive(tf: TlsFederation, agency: str) -> Any:
    connection = await aio_pika.connect(tf.url(agency))
    async with connection:
        channel = await connection.channel()
        inbox = await channel.get_queue(f"isa.inbox.{agency}", ensure=False)
        message = await inbox.get(timeout=5)
        await message.ack()
        return message


class TestClientCertificateLogin:
    async def test_agency_certificate_sends_and_the_recipient_receives(
        self, tls_fed: TlsFederation
    ) -> None:
        """A's certificate logs in as A; B's certificate reads it from B's inbox."""
        await send(tls_fed, tls_fed.fed.a, tls_fed.fed.b, b"synthetic over TLS")
        message = await receive(tls_fed, tls_fed.fed.b)
        assert (message.body, message.user_id) == (b"synthetic over TLS", tls_fed.fed.a)

    async def test_certificate_identity_is_held_to_the_agency_permissions(
        self, tls_fed: TlsFederation
    ) -> None:
        """A's certificate cannot consume B's inbox (ACCESS_REFUSED), as with a password."""
        connection = await aio_pika.connect(tls_fed.url(tls_fed.fed.a))
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(f"isa.inbox.{tls_fed.fed.b}", ensure=False)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await queue.get(fail=False)

    async def test_certificate_cannot_publish_as_another_agency(
        self, tls_fed: TlsFederation
    ) -> None:
        """user_id is checked against the certificate's user (PRECONDITION_FAILED)."""
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await send(tls_fed, tls_fed.fed.a, tls_fed.fed.b, b"x", user_id=tls_fed.fed.b)


#: The node refuses in the TLS handshake; depending on timing the client sees the TLS alert or
#: only the reset that follows it.
CONNECT_FAILURES = (ssl.SSLError, ConnectionError, aiormq.exceptions.AMQPConnectionError)


class TestRefusedAtTheDoor:
    async def test_no_client_certificate_is_refused(self, tls_fed: TlsFederation) -> None:
        """Without a certificate the TLS handshake fails (fail_if_no_peer_cert)."""
        with pytest.raises(CONNECT_FAILURES, match=r"CERTIFICATE_REQUIRED|reset by peer"):
            await aio_pika.connect(tls_fed.url(None))

    async def test_certificate_from_another_ca_is_refused(self, tls_fed: TlsFederation) -> None:
        """A certificate naming agency A but issued by another CA does not get in."""
        with pytest.raises(CONNECT_FAILURES, match=r"UNKNOWN_CA|reset by peer"):
            await aio_pika.connect(tls_fed.url("rogue"))

    async def test_password_login_is_not_offered(self, tls_fed: TlsFederation) -> None:
        """Only EXTERNAL is offered: PLAIN with a valid certificate is refused."""
        with pytest.raises(aiormq.exceptions.AuthenticationError, match="EXTERNAL"):
            await aio_pika.connect(tls_fed.url(tls_fed.fed.a, auth="plain"))

    async def test_revoked_agency_certificate_no_longer_logs_in(
        self, tls_fed: TlsFederation
    ) -> None:
        """After revocation and provisioning, B's (still valid) certificate is refused."""
        fed = tls_fed.fed
        original = fed.config
        try:
            code, _ = await asyncio.to_thread(fed.provision, revoked=[fed.b])
            assert code == 0
            with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
                await aio_pika.connect(tls_fed.url(fed.b))
        finally:
            fed.config = broker_config_from_dict(original.model_dump())
            await asyncio.to_thread(fed.provision)


class TestEd25519Certificates:
    """Erlang/OTP 25 (RabbitMQ 3.10) takes Ed25519 certificates in TLS 1.3 only."""

    async def test_ed25519_client_certificate_logs_in_over_tls13(
        self, tls_fed: TlsFederation
    ) -> None:
        """An Ed25519 certificate from an Ed25519 CA authenticates agency A over TLS 1.3."""
        context = tls_fed.context("ed25519", ssl.TLSVersion.TLSv1_3)
        connection = await aio_pika.connect(tls_fed.url(None), ssl_context=context)
        async with connection:
            channel = await connection.channel()
            inbox = await channel.declare_queue(f"isa.inbox.{tls_fed.fed.a}", passive=True)
        assert inbox.name == f"isa.inbox.{tls_fed.fed.a}"

    async def test_ed25519_client_certificate_fails_over_tls12(
        self, tls_fed: TlsFederation
    ) -> None:
        """Capped at TLS 1.2 the same certificate cannot complete the handshake."""
        context = tls_fed.context("ed25519", ssl.TLSVersion.TLSv1_2)
        refused = r"HANDSHAKE_FAILURE|CERTIFICATE_REQUIRED|reset by peer"
        with pytest.raises(CONNECT_FAILURES, match=refused):
            await aio_pika.connect(tls_fed.url(None), ssl_context=context)
