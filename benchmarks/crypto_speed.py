"""Seal + open throughput of an envelope on one core (target: >= 3,000 pairs per second).

    .venv/bin/python benchmarks/crypto_speed.py [--seconds 3] [--payload-bytes 2048]
        [--version 2] [--json]

Each pair is one ``seal`` (X25519 + BLAKE2b + XChaCha20-Poly1305 + Ed25519 sign, fresh
ephemeral key, nonce and UUIDv7) and one full ``open_envelope`` (strict frame parse, canonical
header re-encode, Ed25519 verify against the manifest, recipient/expiry/skew/replay/ISA checks,
decrypt, canonical plaintext parse; v2 also validates the sealed meta). Single-threaded: this
is the per-core figure. Synthetic data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from federation import pki
from federation.canonical import b64url_encode, format_time
from federation.envelope import EnvelopeSpec, IsaRef, WireVersion, seal
from federation.keys import EncryptionKey, Keyring, SigningKey, announce
from federation.manifest import (
    AgencyEntry,
    IsaEntry,
    Manifest,
    ManifestDocument,
    build_manifest,
    verify_manifest,
)
from federation.receive import open_envelope

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ISA_SHA = hashlib.sha256(b"synthetic benchmark ISA").hexdigest()


def _federation() -> tuple[SigningKey, EncryptionKey, Keyring, Manifest]:
    root_key, signer = SigningKey.generate(), SigningKey.generate()
    sender, recipient_key = SigningKey.generate(), EncryptionKey.generate()
    window: dict[str, Any] = {
        "not_before": NOW - timedelta(days=1),
        "not_after": NOW + timedelta(days=30),
    }
    root = pki.make_root(root_key, name="SYN bench root", **window)

    def cert(subject: str, key: SigningKey, role: pki.CertificateRole, serial: int) -> str:
        issued = pki.issue_certificate(
            root_key=root_key,
            root_cert=root,
            subject=subject,
            public_key=key.verify_key,
            role=role,
            serial=serial,
            **window,
        )
        return b64url_encode(pki.certificate_to_der(issued))

    council_signing = SigningKey.generate()
    agencies = [
        AgencyEntry(
            id="syn-police",
            name="SYN police",
            broker_user="syn-police",
            certificate=cert("syn-police", sender, pki.CertificateRole.AGENCY, 2),
        ),
        AgencyEntry(
            id="syn-council",
            name="SYN council",
            broker_user="syn-council",
            certificate=cert("syn-council", council_signing, pki.CertificateRole.AGENCY, 3),
            announcements=[
                announce(
                    council_signing, agency="syn-council", public_key=recipient_key.public, **window
                )
            ],
        ),
    ]
    isa = IsaEntry(
        id="SYN-ISA-1",
        version="1.0.0",
        sha256=ISA_SHA,
        parties=["syn-police", "syn-council"],
        status="active",
        effective_from="2026-01-01T00:00:00Z",
    )
    doc = ManifestDocument(
        v=1,
        serial=1,
        issued_at=format_time(NOW),
        expires_at=format_time(NOW + timedelta(days=7)),
        agencies=agencies,
        isas=[isa],
    )
    signer_cert = pki.issue_certificate(
        root_key=root_key,
        root_cert=root,
        subject="signer",
        public_key=signer.verify_key,
        role=pki.CertificateRole.MANIFEST_SIGNER,
        serial=4,
        **window,
    )
    data = build_manifest(doc, signer_key=signer, signer_cert=signer_cert)
    manifest = verify_manifest(
        data, root_cert=root, pinned_fingerprint=pki.fingerprint(root), now=NOW, current_serial=0
    )
    ring = Keyring()
    ring.add(recipient_key, NOW - timedelta(days=1))
    return sender, recipient_key, ring, manifest


def libsodium_floor(frame_bytes: int, rounds: int = 500) -> float:
    """CPU seconds per pair for the libsodium calls alone (the floor any binding must pay)."""
    from nacl.bindings import (
        crypto_aead_xchacha20poly1305_ietf_decrypt,
        crypto_aead_xchacha20poly1305_ietf_encrypt,
        crypto_scalarmult,
        crypto_scalarmult_base,
    )

    key, msg = SigningKey.generate(), bytes(frame_bytes)
    secret, key32, nonce = bytes(range(1, 33)), bytes(32), bytes(24)
    public = crypto_scalarmult_base(secret)
    start = time.process_time()
    for _ in range(rounds):
        sig = key.sign(msg).signature
        key.verify_key.verify(msg, sig)
        crypto_scalarmult_base(secret)
        crypto_scalarmult(secret, public)
        crypto_scalarmult(secret, public)
        ct = crypto_aead_xchacha20poly1305_ietf_encrypt(msg[:2100], msg[:600], nonce, key32)
        crypto_aead_xchacha20poly1305_ietf_decrypt(ct, msg[:600], nonce, key32)
    return (time.process_time() - start) / rounds


def run(seconds: float, payload_bytes: int, version: WireVersion = 2) -> dict[str, Any]:
    sender, recipient_key, ring, manifest = _federation()
    spec = EnvelopeSpec(
        type="marac_referral",
        sender="syn-police",
        recipient="syn-council",
        isa=IsaRef(id="SYN-ISA-1", version="1.0.0", sha256=ISA_SHA),
        purpose="marac_referral",
        lawful_basis={"art6": "6(1)(e)"},
        risk="high",
        handling=["must_not_inform:perpetrator"],
        expires_at=NOW + timedelta(days=1),
    )
    payload = {"synthetic": True, "ref": "SYN-BENCH", "notes": "x" * payload_bytes}
    seen: set[str] = set()
    pairs, frame_len = 0, 0
    deadline = time.perf_counter() + seconds
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() < deadline:
        for _ in range(100):
            frame = seal(
                payload, spec, signing_key=sender, recipient_public=recipient_key.public, now=NOW,
                version=version,
            )  # fmt: skip
            opened = open_envelope(
                frame,
                recipient="syn-council",
                keyring=ring,
                manifest=manifest,
                now=NOW,
                seen=seen.__contains__,
            )
            seen.add(opened.envelope_id)
            frame_len = len(frame)
        pairs += 100
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    floor = libsodium_floor(frame_len)
    return {
        "benchmark": f"envelope v{version} seal+open, one core",
        "payload_bytes": payload_bytes,
        "frame_bytes": frame_len,
        "pairs": pairs,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "pairs_per_second": round(pairs / elapsed),
        "pairs_per_cpu_second": round(pairs / cpu),
        "libsodium_floor_pairs_per_cpu_second": round(1 / floor),
        "python_overhead_us_per_pair": round((cpu / pairs - floor) * 1e6),
        "target_pairs_per_second": 3000,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--payload-bytes", type=int, default=2048)
    parser.add_argument("--version", type=int, choices=(1, 2), default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.payload_bytes, 1 if args.version == 1 else 2)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"seal+open of a {result['payload_bytes']} B payload "
            f"({result['frame_bytes']} B frame): "
            f"{result['pairs_per_cpu_second']:,} pairs per CPU-second on one core "
            f"({result['pairs_per_second']:,}/s wall clock; {result['pairs']} pairs in "
            f"{result['seconds']} s, {result['cpu_seconds']} s CPU; target >= 3,000)\n"
            f"libsodium calls alone, same machine now: "
            f"{result['libsodium_floor_pairs_per_cpu_second']:,} pairs per CPU-second; "
            f"Python overhead {result['python_overhead_us_per_pair']} us per pair"
        )
    return 0 if result["pairs_per_cpu_second"] >= 3000 else 1


if __name__ == "__main__":
    sys.exit(main())
