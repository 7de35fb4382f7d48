"""``isa-agent check``: one line per check, exit 0 only when all pass, never a traceback.

Runs against a provisioned dev federation on a real RabbitMQ (the broker check logs in). Each
failure case is the federation's own agent.toml with one thing changed, written beside it so
that its relative paths still resolve.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main
from agent.commands.check import CheckResult, run_checks
from broker.devfed import DevFederation
from broker.fedstate import publish_manifest, read_private
from devtools import federation as tools_federation
from federation import pki
from federation.manifest import build_manifest, unverified_document
from federation.topology import inbox_queue
from tests.support.federation import free_port
from tests.support.processes import isolated_federation_at
from tests.support.rabbitmq import RabbitServer

pytestmark = [pytest.mark.rabbitmq]

AGENCY = "assist"
NAMES = ["config", "signing-key", "enc-keys", "root", "manifest", "identity", "isas",
         "data-dir", "broker"]  # fmt: skip


#: The federation is built, and every check judged, at this fixed time: the shipped ISAs'
#: review and end dates are fixed in their YAML, so a test on the wall clock would change its
#: verdicts as the calendar passes them (the unit suite also runs with the clock years ahead).
BUILT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fed(
    tmp_path_factory: pytest.TempPathFactory, rabbit_server: RabbitServer
) -> Iterator[DevFederation]:
    root = tmp_path_factory.mktemp("check") / "fed"
    with isolated_federation_at(root, rabbit_server, now=BUILT) as made:
        yield made


def format_1(fed: DevFederation, policies: Path, agency: str = AGENCY) -> Path:
    """The agency's agent.toml on a format-1 copy of the federation's manifest (one that carries
    no ISA, as before issue 15.5), reading the ISAs from ``policies``."""
    doc = unverified_document(fed.layout.manifest.read_bytes())
    current = [e.model_copy(update={"document": None}) for e in doc.isas if not e.superseded]
    data = build_manifest(
        doc.model_copy(update={"v": 1, "isas": current}),
        signer_key=read_private(fed.layout.signer_key),
        signer_cert=pki.certificate_from_bytes(fed.layout.signer_cert.read_bytes()),
    )
    copy = policies.with_name(f"manifest-v1-{uuid.uuid4().hex[:8]}.json")
    copy.write_bytes(data)
    path = variant(fed, agency, manifest_file=str(copy))
    trust = f"[trust]\npolicies_dir = {json.dumps(str(policies))}\n"
    path.write_text(path.read_text().replace("[trust]\n", trust))
    return path


def variant(fed: DevFederation, agency: str = AGENCY, **lines: object) -> Path:
    """The agency's agent.toml with each ``key = ...`` line given a new (JSON-quoted) value."""
    original = fed.agency(agency).config
    text = original.read_text()
    for key, value in lines.items():
        text, count = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", text, flags=re.M)
        assert count == 1, key
    path = original.with_name(f"agent.{uuid.uuid4().hex[:8]}.toml")
    path.write_text(text)
    return path


async def check(path: Path, now: datetime | None = None) -> dict[str, CheckResult]:
    results = await run_checks(path, {}, now or BUILT + timedelta(minutes=1))
    assert [r.name for r in results] == NAMES
    return {r.name: r for r in results}


def built_at(fed: DevFederation) -> Callable[[], datetime]:
    """A clock stopped a minute after the federation's manifest was signed (its keys were made
    within that second, after the manifest's whole-second issued_at)."""
    issued = unverified_document(fed.layout.manifest.read_bytes()).issued_at
    return lambda: datetime.fromisoformat(issued) + timedelta(minutes=1)


def verdicts(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.verdict for name, r in results.items()}


def all_ok_but(**others: str) -> dict[str, str]:
    return {name: others.get(name.replace("-", "_"), "ok") for name in NAMES}


class TestGoodConfig:
    def test_every_check_prints_ok_and_the_exit_code_is_0(
        self, fed: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A freshly provisioned agency passes all nine checks and every deadline, `ok` each."""
        code = main(["check", "--config", str(fed.agency(AGENCY).config)], clock=built_at(fed))
        lines = capsys.readouterr().out.splitlines()
        assert code == 0, lines
        assert [line.split()[:2] for line in lines[:9]] == [["ok", n] for n in NAMES]
        assert {tuple(line.split()[:2]) for line in lines[9:-1]} == {("ok", "expires")}
        assert lines[-1] == f"all {len(lines) - 1} checks passed"

    def test_the_broker_password_is_never_printed(
        self, fed: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The broker line shows the URL with the password masked."""
        main(["check", "--config", str(fed.agency(AGENCY).config)], clock=built_at(fed))
        out = capsys.readouterr().out
        assert fed.agency(AGENCY).broker_password not in out
        assert ":******@" in out


class TestConfigFailure:
    def test_invalid_toml_fails_config_skips_the_rest_and_exits_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Unparseable TOML: one FAIL line naming the file, eight `skip` lines, exit 1."""
        path = tmp_path / "agent.toml"
        path.write_text('agency = "unterminated\n')
        code = main(["check", "--config", str(path)])
        out, err = capsys.readouterr()
        lines = out.splitlines()
        assert code == 1
        assert lines[0].startswith("FAIL  config")
        assert "invalid TOML" in lines[0]
        assert [line.split()[0] for line in lines[1:-1]] == ["skip"] * 8
        assert "Traceback" not in out + err

    def test_a_directory_given_as_config_is_a_fail_line_not_a_traceback(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--config pointing at a directory: `FAIL config: cannot read`, exit 1."""
        code = main(["check", "--config", str(tmp_path)])
        out, err = capsys.readouterr()
        assert code == 1
        assert "cannot read config file" in out.splitlines()[0]
        assert "Traceback" not in out + err


class TestKeyFailures:
    async def test_a_signing_key_readable_by_others_fails_its_mode_check(
        self, fed: DevFederation, tmp_path: Path
    ) -> None:
        """Mode 0644 on the signing key: `signing-key` FAILs and says to chmod 600."""
        key = tmp_path / "signing.key"
        shutil.copy(fed.layout.agency_dir(AGENCY) / "keys" / "signing.key", key)
        key.chmod(0o644)
        results = await check(variant(fed, signing_key=str(key)))
        assert verdicts(results) == all_ok_but(signing_key="FAIL")
        assert "chmod 600" in results["signing-key"].detail

    async def test_another_agencys_signing_key_fails_the_identity_check(
        self, fed: DevFederation
    ) -> None:
        """A valid key that is not the one certified for us: `identity` FAILs."""
        other = fed.layout.agency_dir("council-sw") / "keys" / "signing.key"
        results = await check(variant(fed, signing_key=str(other)))
        assert verdicts(results) == all_ok_but(identity="FAIL")
        assert "not the one certified" in results["identity"].detail


class TestTrustFailures:
    async def test_a_root_that_does_not_match_the_pin_fails_and_skips_what_needs_it(
        self, fed: DevFederation
    ) -> None:
        """Wrong root_fingerprint: `root` FAILs; manifest, identity and isas are `skip`."""
        results = await check(variant(fed, root_fingerprint="0" * 64))
        assert verdicts(results) == all_ok_but(
            root="FAIL", manifest="skip", identity="skip", isas="skip"
        )
        assert "does not match the pinned root_fingerprint" in results["root"].detail

    async def test_an_expired_manifest_fails(self, fed: DevFederation) -> None:
        """Eight days on, the 7-day dev manifest has expired: `manifest` FAILs with `expired`."""
        later = BUILT + timedelta(days=8)
        results = await check(fed.agency(AGENCY).config, now=later)
        assert results["manifest"].verdict == "FAIL"
        assert "manifest rejected: expired" in results["manifest"].detail

    async def test_a_tampered_manifest_fails(self, fed: DevFederation, tmp_path: Path) -> None:
        """The signed document's serial changed: `manifest` FAILs (bad signature)."""
        data = fed.layout.manifest.read_bytes()
        tampered = tmp_path / "manifest.json"
        tampered.write_bytes(re.sub(rb'"serial":(\d+)', rb'"serial":9\1', data, count=1))
        results = await check(variant(fed, manifest_file=str(tampered)))
        assert verdicts(results) == all_ok_but(manifest="FAIL", identity="skip", isas="skip")
        assert "manifest rejected: bad_signature" in results["manifest"].detail

    async def test_a_source_older_than_the_held_manifest_is_a_rollback(
        self, fed: DevFederation, tmp_path: Path
    ) -> None:
        """The agent holds serial N+1; the configured file still says N: `manifest` FAILs."""
        old = tmp_path / "old-manifest.json"
        shutil.copy(fed.layout.manifest, old)
        publish_manifest(fed.layout, BUILT + timedelta(seconds=30))
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        shutil.copy(fed.layout.manifest, data_dir / "manifest.json")
        results = await check(variant(fed, manifest_file=str(old), data_dir=str(data_dir)))
        assert results["manifest"].verdict == "FAIL"
        assert re.search(r"serial \d+ is older than the held \d+", results["manifest"].detail)

    async def test_a_locally_edited_isa_fails_its_sha256_check(
        self, fed: DevFederation, tmp_path: Path
    ) -> None:
        """One comment added to our copy of an ISA: `isas` FAILs naming it."""
        policies = tmp_path / "policies"
        shutil.copytree(fed.layout.policies, policies)
        with (policies / "police-to-assist.yaml").open("a") as handle:
            handle.write("# a local edit\n")
        results = await check(format_1(fed, policies))
        assert verdicts(results) == all_ok_but(isas="FAIL")
        assert "isa-police-assist-advocacy" in results["isas"].detail
        assert "differs from the manifest" in results["isas"].detail


class TestBrokerFailures:
    async def test_a_wrong_password_fails_the_login(self, fed: DevFederation) -> None:
        """The broker refuses the login: `broker` FAILs and names the user."""
        results = await check(variant(fed, password="SYN-wrong-password"))
        assert verdicts(results) == all_ok_but(broker="FAIL")
        assert "login refused" in results["broker"].detail
        assert "SYN-wrong-password" not in results["broker"].detail

    async def test_nothing_listening_fails_with_cannot_connect(self, fed: DevFederation) -> None:
        """A broker URL where nothing listens: `broker` FAILs (cannot connect)."""
        results = await check(variant(fed, urls=[f"amqp://127.0.0.1:{free_port()}/x"]))
        assert verdicts(results) == all_ok_but(broker="FAIL")
        assert "cannot connect" in results["broker"].detail

    async def test_a_missing_inbox_queue_fails_the_passive_check(
        self, fed: DevFederation, rabbit_server: RabbitServer
    ) -> None:
        """The agency's queue was deleted (not provisioned): `broker` FAILs naming the queue."""
        agency = "womens-aid"
        vhost = urllib.parse.quote(_vhost(fed), safe="")
        queue = urllib.parse.quote(inbox_queue(agency), safe="")
        rabbit_server.api("DELETE", f"queues/{vhost}/{queue}")
        results = await check(fed.agency(agency).config)
        assert verdicts(results) == all_ok_but(broker="FAIL")
        assert f"queue {inbox_queue(agency)} does not exist" in results["broker"].detail


def _vhost(fed: DevFederation) -> str:
    text = fed.layout.broker_toml.read_text()
    return text.split('vhost = "', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="module")
def partial(
    tmp_path_factory: pytest.TempPathFactory, rabbit_server: RabbitServer
) -> Iterator[DevFederation]:
    """police-scotland and assist only: every ISA but isa-police-assist-advocacy waits."""
    root, tag = tmp_path_factory.mktemp("partial") / "fed", uuid.uuid4().hex[:10]
    with tools_federation.provisioned(
        root, rabbit_server, vhost=f"test-fed-{tag}", user_prefix=f"test-fed-{tag}.",
        agencies=["police-scotland", AGENCY], now=BUILT,
    ) as made:  # fmt: skip
        yield made


class TestPartialFederation:
    async def test_an_isa_waiting_for_a_party_to_join_is_named_not_failed(
        self, partial: DevFederation
    ) -> None:
        """Regression (a newly onboarded agency failed check): unpublished ISAs pass, named
        (a format-1 manifest, whose ISAs the agent reads from its policies_dir)."""
        results = await check(format_1(partial, partial.layout.policies))
        assert verdicts(results) == all_ok_but()
        assert "isa-marac-referrals (until " in results["isas"].detail
        assert results["isas"].detail.startswith("1 ISAs with this agency as a party match")

    async def test_the_isas_line_names_the_versions_the_manifest_carries(
        self, partial: DevFederation
    ) -> None:
        """Format 2 (issue 15.5): the ISAs come with the manifest; the line names each version
        in force with this agency as a party, and nothing unpublished is looked for."""
        results = await check(partial.agency(AGENCY).config)
        assert verdicts(results) == all_ok_but()
        line = "in force from the manifest: isa-police-assist-advocacy 1.0.0"
        assert results["isas"].detail == line


class TestExpiryLines:
    async def test_each_deadline_is_a_line_with_its_days_left(self, fed: DevFederation) -> None:
        """Manifest, root, signer, own certificate and key, each local ISA's review and end."""
        now = built_at(fed)() + timedelta(days=1)
        limits = (timedelta(days=30), timedelta(days=7))
        results = await run_checks(fed.agency(AGENCY).config, {}, now, limits=limits)
        lines = {r.detail.split(":")[0]: r for r in results if r.name == "expires"}
        days = {key: r.detail.rsplit("(", 1)[1].removesuffix(")") for key, r in lines.items()}
        assert days["manifest federation"] == "6 days left"
        assert days["root_certificate federation"] == "3649 days left"
        assert days["signer_certificate federation"] == "364 days left"
        assert days["agency_certificate assist"] == "364 days left"
        assert days["encryption_key assist"] == "29 days left"
        review = round((datetime(2027, 6, 30, tzinfo=UTC) - now) / timedelta(days=1), 2)
        assert days["isa_review isa-police-assist-advocacy"] == f"{review:g} days left"
        assert "agency_certificate police-scotland" not in lines  # only this agency's own
        assert {r.verdict for r in lines.values()} == {"ok"}

    def test_a_deadline_within_warn_days_is_a_warn_line_and_exit_3(
        self, fed: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --warn-days 400 the certificates are within the threshold: WARN, exit 3."""
        argv = ["check", "--config", str(fed.agency(AGENCY).config), "--warn-days", "400"]
        code = main(argv, clock=built_at(fed))
        lines = capsys.readouterr().out.splitlines()
        warned = [line for line in lines if line.startswith("WARN")]
        assert code == 3
        assert any("agency_certificate assist: until" in line for line in warned)

    def test_a_manifest_within_the_alert_hours_is_a_warn_line(
        self, fed: DevFederation, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """47 hours before the manifest expires (alert at 48): WARN on its line, exit 3."""
        expires = unverified_document(fed.layout.manifest.read_bytes()).expires_at
        at = datetime.fromisoformat(expires) - timedelta(hours=47)
        code = main(["check", "--config", str(fed.agency(AGENCY).config)], clock=lambda: at)
        lines = capsys.readouterr().out.splitlines()
        assert code == 3
        assert [line.split()[:3] for line in lines if "manifest federation" in line] == [
            ["WARN", "expires", "manifest"]
        ]
