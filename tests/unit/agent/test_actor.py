"""The acting person from request headers (agent.actor)."""

from __future__ import annotations

import pytest

from agent.actor import Actor, actor_from_headers
from agent.api_models import RequestInvalid
from agent.errors import ActorRequired


class TestActorFromHeaders:
    def test_no_actor_header_is_nobody(self) -> None:
        """Without any actor header there is no actor (the operation decides if it needs one)."""
        assert actor_from_headers({"Authorization": "Bearer x"}) is None

    def test_all_three_headers_make_the_actor(self) -> None:
        """Id, role and justification are taken as asserted."""
        actor = actor_from_headers({"X-Actor-Id": "SYN-pc-1234", "X-Actor-Role": "marac_reviewer",
                                    "X-Actor-Justification": "SYN: threshold met"})  # fmt: skip
        assert actor == Actor("SYN-pc-1234", "marac_reviewer", "SYN: threshold met")

    @pytest.mark.parametrize(
        ("headers", "named"),
        [
            ({"X-Actor-Id": ""}, "X-Actor-Id"),
            ({"X-Actor-Id": "x" * 129}, "X-Actor-Id"),
            ({"X-Actor-Id": "a/b"}, "X-Actor-Id"),
            ({"X-Actor-Id": "a", "X-Actor-Role": "Reviewer"}, "X-Actor-Role"),
            ({"X-Actor-Id": "a", "X-Actor-Justification": "line\nbreak"}, "X-Actor-Justification"),
            ({"X-Actor-Id": "a", "X-Actor-Justification": "x" * 501}, "X-Actor-Justification"),
        ],
    )
    def test_a_malformed_header_is_a_400_naming_it(
        self, headers: dict[str, str], named: str
    ) -> None:
        """Out of form, or a role/justification without an id: 400 naming the header only."""
        with pytest.raises(RequestInvalid) as info:
            actor_from_headers(headers)
        assert list(info.value.errors) == [named]
        assert all(v not in str(info.value.errors) for v in headers.values() if len(v) > 3)


class TestActor:
    @pytest.mark.parametrize(
        "headers", [{"X-Actor-Role": "marac_reviewer"}, {"X-Actor-Justification": "SYN"}]
    )
    def test_a_role_or_justification_without_a_person_is_actor_required(
        self, headers: dict[str, str]
    ) -> None:
        """Asserting a role for nobody: 422 actor-required, naming X-Actor-Id."""
        with pytest.raises(ActorRequired, match="X-Actor-Id") as info:
            actor_from_headers(headers)
        assert info.value.http_status == 422

    def test_a_blank_justification_is_none(self) -> None:
        """Whitespace only is no justification (HTTP strips it anyway)."""
        assert actor_from_headers({"X-Actor-Id": "a", "X-Actor-Justification": "  "}) == Actor("a")

    def test_the_label_names_the_client_and_the_person(self) -> None:
        """Audit entries name ``client/person``: the client vouches for the person."""
        assert Actor("SYN-1").label("case-system") == "case-system/SYN-1"

    def test_a_body_justification_wins_over_the_header(self) -> None:
        """``because`` replaces the justification; None keeps the header's."""
        actor = Actor("SYN-1", "r", "header")
        assert actor.because("body").justification == "body"
        assert actor.because(None) is actor
