"""``agent.actor``: the X-Actor-* headers name a person by staff id, role and reason, or nobody."""

from __future__ import annotations

from typing import cast

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.actor import (
    ACTOR_ID_HEADER,
    ACTOR_ROLE_HEADER,
    JUSTIFICATION_HEADER,
    Actor,
    Caller,
    actor_headers,
    parse_actor,
    require_accountable,
    require_person,
)
from agent.api import create_app
from agent.api_models import AgentService
from agent.errors import ActorInvalid, ActorRequired, JustificationRequired
from agent.openapi import OPERATIONS, Operation, build_openapi


def _headers(**values: str | list[str]) -> dict[str, list[str]]:
    names = {"id": ACTOR_ID_HEADER, "role": ACTOR_ROLE_HEADER, "why": JUSTIFICATION_HEADER}
    return {names[k]: v if isinstance(v, list) else [v] for k, v in values.items()}


class TestParseActor:
    def test_id_role_and_justification_name_the_person(self) -> None:
        """All three headers: an Actor with each value as given."""
        actor = parse_actor(_headers(id="SYN-4711", role="idva", why="MARAC referral, s115 CDA"))
        assert actor == Actor("SYN-4711", "idva", "MARAC referral, s115 CDA")
        assert actor.is_person

    def test_no_header_names_nobody(self) -> None:
        """None of the headers: None (the policy decides whether that is allowed)."""
        assert parse_actor({}) is None

    def test_the_justification_is_optional_here(self) -> None:
        """Id and role alone name a person without a reason."""
        assert parse_actor(_headers(id="SYN-1", role="dpo")) == Actor("SYN-1", "dpo")

    def test_actor_headers_round_trip(self) -> None:
        """What a case system sends with ``actor_headers`` parses back to the same actor."""
        sent = actor_headers("SYN-1", "case_worker", "safeguarding")
        assert parse_actor({k: [v] for k, v in sent.items()}) == Actor(
            "SYN-1", "case_worker", "safeguarding"
        )

    @pytest.mark.parametrize(
        "actor_id",
        ["Jane Example", "jane@example.invalid", "system:police", "-SYN", "", "x" * 65, "SYNé"],
    )
    def test_an_id_that_cannot_be_a_staff_identifier_is_refused(self, actor_id: str) -> None:
        """A name (space), an e-mail address, the reserved system: prefix, a leading dash, an
        empty or over-long id, or a non-ASCII letter: ActorInvalid, not echoing the value."""
        with pytest.raises(ActorInvalid) as raised:
            parse_actor(_headers(id=actor_id, role="idva"))
        assert ACTOR_ID_HEADER in raised.value.message
        assert not actor_id or actor_id not in raised.value.message

    @pytest.mark.parametrize("role", ["IDVA", "case worker", "1dva", "", "r" * 41])
    def test_a_role_that_is_not_a_role_code_is_refused(self, role: str) -> None:
        """Upper case, spaces, a leading digit, empty or over 40 characters: ActorInvalid."""
        with pytest.raises(ActorInvalid, match=ACTOR_ROLE_HEADER):
            parse_actor(_headers(id="SYN-1", role=role))

    @pytest.mark.parametrize(
        "why", ["", " padded", "padded ", "line\nbreak", "tab\there", "x" * 501, "naïve"]
    )
    def test_a_justification_that_is_not_printable_ascii_is_refused(self, why: str) -> None:
        """Empty, padded, control characters, over 500 characters or non-ASCII: ActorInvalid."""
        with pytest.raises(ActorInvalid, match=JUSTIFICATION_HEADER):
            parse_actor(_headers(id="SYN-1", role="idva", why=why))

    def test_a_justification_of_500_characters_is_kept(self) -> None:
        """The limit is inclusive."""
        actor = parse_actor(_headers(id="SYN-1", role="idva", why="x" * 500))
        assert actor == Actor("SYN-1", "idva", "x" * 500)

    @pytest.mark.parametrize(
        "given",
        [
            {"id": ["SYN-1", "SYN-2"], "role": "idva"},
            {"id": "SYN-1", "role": ["idva", "dpo"]},
            {"id": "SYN-1", "role": "idva", "why": ["a", "b"]},
        ],
    )
    def test_a_header_given_twice_is_refused(self, given: dict[str, str | list[str]]) -> None:
        """One person per call: a repeated header is ActorInvalid, never the first or last."""
        with pytest.raises(ActorInvalid, match="more than once"):
            parse_actor(_headers(**given))

    @pytest.mark.parametrize("given", [{"id": "SYN-1"}, {"role": "idva"}, {"why": "safeguarding"}])
    def test_a_header_without_its_partners_is_refused(self, given: dict[str, str]) -> None:
        """An id without a role, a role without an id, a reason without either: ActorInvalid."""
        with pytest.raises(ActorInvalid):
            parse_actor(_headers(**given))


class TestSystemActors:
    def test_a_caller_naming_nobody_is_its_client_as_the_system(self) -> None:
        """``system:<client>`` with role ``system``, which is not a person."""
        caller = Caller.system("case-system")
        assert caller.actor == Actor("system:case-system", "system")
        assert not caller.actor.is_person


class TestRequirements:
    def test_a_person_with_a_reason_is_accountable(self) -> None:
        """Nothing is raised for a named person with a justification."""
        require_accountable(Actor("SYN-1", "idva", "safeguarding"), "s62")

    def test_the_system_is_not_a_person(self) -> None:
        """ActorRequired names the headers and what asked for them."""
        with pytest.raises(ActorRequired, match=r"s62 flow: name the person acting \(X-Actor-Id"):
            require_person(Actor.system("case-system"), "s62 flow")

    def test_a_person_without_a_reason_is_not_accountable(self) -> None:
        """JustificationRequired names the justification header."""
        with pytest.raises(JustificationRequired, match=JUSTIFICATION_HEADER):
            require_accountable(Actor("SYN-1", "idva"), "disclosure")

    def test_the_errors_are_400s(self) -> None:
        """All three are bad requests (problem+json 400 at the API)."""
        assert {e.http_status for e in (ActorInvalid, ActorRequired, JustificationRequired)} == {
            400
        }


class TestDocumented:
    @pytest.mark.parametrize("require_actor", [True, False])
    @pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.operation_id)
    def test_each_operation_documents_the_headers_as_the_agent_requires_them(
        self, op: Operation, require_actor: bool
    ) -> None:
        """Authenticated operations list X-Actor-Id, -Role and -Justification as header
        parameters, required exactly where the agent refuses a call without them."""
        doc = build_openapi(max_body_bytes=4096, require_actor=require_actor)
        parameters = doc["paths"][op.path][op.method].get("parameters", [])
        actor = {p["name"]: p["required"] for p in parameters if p["in"] == "header"}
        if op.actor == "none":
            assert actor == {}
            return
        always = op.actor == "always"  # erasure and legal holds, whatever the setting
        person = always or (require_actor and op.actor in ("person", "justified"))
        assert actor == {
            ACTOR_ID_HEADER: person,
            ACTOR_ROLE_HEADER: person,
            JUSTIFICATION_HEADER: always or (require_actor and op.actor == "justified"),
        }

    async def test_the_served_document_follows_the_setting(self) -> None:
        """The app documents what it enforces: no header required without require_actor."""
        app = create_app(cast("AgentService", object()), [], require_actor=False)
        async with TestClient(TestServer(app)) as client:
            doc = await (await client.get("/v1/openapi.json")).json()
        submit = doc["paths"]["/v1/messages"]["post"]["parameters"]
        assert [p["name"] for p in submit] == [ACTOR_ID_HEADER, ACTOR_ROLE_HEADER,
                                               JUSTIFICATION_HEADER]  # fmt: skip
        assert not [p for p in submit if p["required"]]
