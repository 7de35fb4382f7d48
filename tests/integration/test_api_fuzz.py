"""Property-based fuzzing of the local API against its own OpenAPI document (schemathesis).

A live aiohttp server (over the in-memory FakeService) runs on a loopback port in a thread;
schemathesis generates valid and invalid requests for every operation and checks each answer:
no 5xx, every status documented for that operation, content types and bodies matching their
schemas, auth really enforced, undefined methods answered 405.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import threading
from collections import Counter
from collections.abc import Coroutine, Iterator
from typing import Any, Literal, TypeVar

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.api import DEFAULT_MAX_BODY_BYTES, create_app, serving
from agent.api_models import PreviewResponse, Problem, SubmitResponse
from agent.auth import hash_token
from agent.config import ApiClientSettings
from agent.openapi import build_openapi
from agent.openapi_referrals import EXAMPLE_FLOWS
from agent.runtime import run_agent
from broker.devfed import DevFederation
from federation.synth import generate_referral
from tests.support.federation import (
    SYNTHETIC_ACTOR,
    agent_settings,
    build_federation,
    remove_federation,
    running_agents,
)
from tests.support.rabbitmq import RabbitServer
from tests.unit.agent.api.conftest import ALL, CLIENTS, MAX_BODY
from tests.unit.agent.api.fake_service import FakeService

#: - The token has every scope; schemathesis sends it where the document says a token is needed
#:   and leaves it out (or spoils it) when it checks that auth is enforced.
#: - Invalid requests may be refused as too large (413) before their content is looked at.
#: - Schema-valid requests may still be refused by the agent's semantics, each documented: the
#:   ISA denies (403), the payload breaks its message type (422), the idempotency key was used
#:   for another body (409), or it is too large (413).
_CONFIG_DICT: dict[str, Any] = {
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]
        },
        "positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 413, 422]},
    },
}
_CONFIG = schemathesis.Config.from_dict(
    {**_CONFIG_DICT, "auth": {"openapi": {"bearer": {"bearer": ALL}}}}
)
T = TypeVar("T")
schema = schemathesis.openapi.from_dict(build_openapi(max_body_bytes=MAX_BODY), config=_CONFIG)


#: Valid partners for an X-Actor-* header a generated case leaves out (synthetic).
_PARTNERS = {"x-actor-id": ("X-Actor-Id", "SYN-FUZZ-1"), "x-actor-role": ("X-Actor-Role", "idva")}


@schemathesis.hook("before_call")
def _pair_actor_headers(ctx: schemathesis.HookContext, case: schemathesis.Case[Any],
                        **kwargs: Any) -> None:  # fmt: skip
    """What OpenAPI cannot say: X-Actor-Id and X-Actor-Role come together, and a
    justification only with them (agent.actor rule 2; a partial set is 400 actor-invalid, as
    tests/unit/agent/test_actor.py pins). A case that names one of them, where its partner is
    OPTIONAL, gets the partner with a valid value: it stays as valid or invalid as generated.
    A required partner is never added (its absence is what a negative case tests)."""
    headers = case.headers if case.headers is not None else {}
    present = {name.lower() for name in headers}
    if not present & {*_PARTNERS, "x-actor-justification"}:
        return
    optional = {p.name.lower() for p in case.operation.headers if not p.is_required}
    for lowered, (name, value) in _PARTNERS.items():
        if lowered not in present and lowered in optional:
            headers[name] = value
    case.headers = headers


class _ThreadLoop:
    """An event loop running in a thread, so sync schemathesis tests can talk to async servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _ThreadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return self.submit(coroutine).result(timeout=timeout)


class _LiveServer:
    """The API over the FakeService on 127.0.0.1:<free port>, served from a thread's loop."""

    def __init__(self) -> None:
        self.service = FakeService(deliveries=200)
        self._app = create_app(self.service, CLIENTS, max_body_bytes=MAX_BODY)
        self._thread_loop = _ThreadLoop()
        self._stack = contextlib.AsyncExitStack()
        self.base_url = ""

    def __enter__(self) -> _LiveServer:
        self._thread_loop.__enter__()
        serve = serving(self._app, "127.0.0.1", 0)
        port = self._thread_loop.run(self._stack.enter_async_context(serve))
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread_loop.run(self._stack.aclose())
        self._thread_loop.__exit__(*exc)


@pytest.fixture(scope="module")
def live_server() -> Iterator[_LiveServer]:
    with _LiveServer() as server:
        yield server


@pytest.fixture
def live_api(live_server: _LiveServer) -> str:
    return live_server.base_url


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_contract(case: schemathesis.Case[Any], live_api: str) -> None:
    """For generated requests: no 500, only documented statuses, bodies match their schemas."""
    case.call_and_validate(base_url=live_api)


def test_linked_workflows_keep_the_contract(live_server: _LiveServer) -> None:
    """Submit then read its status, list the inbox then ack: every step keeps the contract."""
    base_url = live_server.base_url
    waiting = len(live_server.service.inbox_items)

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"base_url": base_url}

    Workflow.run(
        settings=settings(
            max_examples=30,
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert len(live_server.service.inbox_items) < waiting, "the inbox -> ack link was never used"


# --- the same contract, kept by the real agent (real store, ISA engine, RabbitMQ) ------------


#: The real agent is this agency's; the API client below replaces its configured ones. It
#: requires the person acting (X-Actor-*), as the document it is fuzzed against says.
SENDER = "police-scotland"
#: The real agent gets one API client with this (synthetic) token and every scope.
REAL_TOKEN = "syn-token-fuzz-real-agent-000000000000000"
real_schema = schemathesis.openapi.from_dict(
    build_openapi(max_body_bytes=DEFAULT_MAX_BODY_BYTES),
    config=schemathesis.Config.from_dict(
        {**_CONFIG_DICT, "auth": {"openapi": {"bearer": {"bearer": REAL_TOKEN}}}}
    ),
)


@pytest.fixture(scope="module")
def real_agent(
    tmp_path_factory: pytest.TempPathFactory, rabbit_server: RabbitServer
) -> Iterator[str]:
    """One real agent of a dev federation (shipped ISAs, provisioned vhost); yields its URL."""
    fed = build_federation(tmp_path_factory.mktemp("fuzz-federation"), rabbit_server)
    fuzz_client = ApiClientSettings(
        name="fuzz", token_sha256=hash_token(REAL_TOKEN), scopes=("send", "receive", "admin")
    )
    settings = agent_settings(
        fed, SENDER, clients=(fuzz_client,), max_body_bytes=DEFAULT_MAX_BODY_BYTES,
        require_actor=True,
    )  # fmt: skip
    try:
        with _ThreadLoop() as thread_loop:
            stop, ready = asyncio.Event(), asyncio.Event()
            running = thread_loop.submit(run_agent(settings, stop=stop, ready=ready))
            thread_loop.run(asyncio.wait_for(ready.wait(), 120), timeout=130)
            try:
                yield f"http://{settings.api.listen}"
            finally:
                thread_loop.loop.call_soon_threadsafe(stop.set)
                running.result(timeout=120)
    finally:
        remove_federation(fed, rabbit_server)


@pytest.mark.rabbitmq
@real_schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_real_agent_keeps_its_openapi_contract(
    case: schemathesis.Case[Any], real_agent: str
) -> None:
    """The real service behind the API: no 500, only documented statuses, bodies match."""
    case.call_and_validate(base_url=real_agent)


# --- the documented examples and schemathesis reach 202 on the real agent (issue 16.7) ---------

#: Generated and example cases per referral operation: bounded for CI (a few hundred in all).
REFERRAL_CASES = 150


@pytest.mark.rabbitmq
async def test_every_documented_example_is_accepted_with_202(
    live_federation: DevFederation,
) -> None:
    """Each submit example in the OpenAPI document, sent by its flow's sender agent: 202."""
    examples = build_openapi(max_body_bytes=DEFAULT_MAX_BODY_BYTES)["paths"]["/v1/messages"][
        "post"
    ]["requestBody"]["content"]["application/json"]["examples"]
    senders = sorted({flow.sender for flow in EXAMPLE_FLOWS})
    answers = {}
    async with running_agents(live_federation, *senders) as agents:
        for flow in EXAMPLE_FLOWS:
            answers[flow.type] = await agents[flow.sender].post(
                "/v1/messages", examples[flow.type]["value"]
            )
    assert {kind: status for kind, (status, _) in answers.items()} == {
        flow.type: 202 for flow in EXAMPLE_FLOWS
    }, answers


@pytest.mark.rabbitmq
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/preview"])
def test_schemathesis_reaches_a_success_and_never_a_5xx(real_agent: str, path: str) -> None:
    """Documented examples, valid and invalid generated bodies: a success, no 5xx, contract."""
    operation = real_schema[path]["POST"]
    cases = st.one_of(
        *operation.get_strategies_from_examples(),
        operation.as_strategy(),
        operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    seen: Counter[int] = Counter()

    @given(case=cases)
    @settings(
        max_examples=REFERRAL_CASES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
        database=None,
    )
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=real_agent)
        seen[response.status_code] += 1
        case.validate_response(response)

    run()
    print(f"schemathesis {path}: {sum(seen.values())} cases, statuses {dict(sorted(seen.items()))}")
    success = 202 if path == "/v1/messages" else 200
    assert seen[success] > 0, f"no {success} in {dict(seen)}"
    assert not [status for status in seen if status >= 500], dict(seen)


# --- real referrals, mutated: the ISA engine and schema checks answer only documented statuses --

#: (recipient, ISA, purpose, message type) of a flow the shipped ISAs permit from SENDER.
FLOW = ("assist", "isa-police-assist-advocacy", "advocacy_after_charge", "police_concern")
RISK_LEVELS: tuple[Literal["standard", "medium", "high"], ...] = ("standard", "medium", "high")
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


def _slots(value: Any) -> list[tuple[dict[str, Any], str]]:
    """Every (object, key) in a JSON document, objects inside lists included."""
    slots: list[tuple[dict[str, Any], str]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            slots += [(value, key), *_slots(child)]
    elif isinstance(value, list):
        for child in value:
            slots += _slots(child)
    return slots


@st.composite
def mutated_referrals(draw: st.DrawFn) -> dict[str, Any]:
    """A valid synthetic referral with up to three fields dropped, replaced or added."""
    seed, level = draw(st.integers(0, 2**16)), draw(st.sampled_from(RISK_LEVELS))
    payload = generate_referral(FLOW[3], random.Random(seed), risk_level=level)
    for _ in range(draw(st.integers(0, 3))):
        holder, key = draw(st.sampled_from(_slots(payload)))
        action = draw(st.sampled_from(["drop", "replace", "add"]))
        if action == "drop" and len(holder) > 1:
            del holder[key]
        elif action == "replace":
            holder[key] = draw(JSON_VALUES)
        else:
            holder[draw(st.text(min_size=1, max_size=12))] = draw(JSON_VALUES)
    to, isa, purpose, kind = FLOW
    return {"to": to, "isa": isa, "purpose": purpose, "type": kind, "payload": payload}


@pytest.mark.rabbitmq
@given(body=mutated_referrals())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_mutated_referrals_get_consistent_documented_answers(
    real_agent: str, body: dict[str, Any]
) -> None:
    """Preview and submit agree: 422 both or neither, DENY is 403, PERMIT a 202 sharing the same,
    REVIEW a 202 review_pending holding the same (the submitter is named, as the agent requires)."""
    headers = {"Authorization": f"Bearer {REAL_TOKEN}", **SYNTHETIC_ACTOR}
    preview = requests.post(
        f"{real_agent}/v1/messages/preview", json=body, headers=headers, timeout=30
    )
    submit = requests.post(f"{real_agent}/v1/messages", json=body, headers=headers, timeout=30)
    assert preview.status_code in {200, 422}, preview.text
    if preview.status_code == 422:
        assert submit.status_code == 422, submit.text
        assert Problem.model_validate_json(submit.content).errors
        return
    decision = PreviewResponse.model_validate_json(preview.content)
    if decision.decision == "DENY":
        assert submit.status_code == 403, submit.text
        assert Problem.model_validate_json(submit.content).reasons
    elif decision.decision == "PERMIT":
        assert submit.status_code == 202, submit.text
        accepted = SubmitResponse.model_validate_json(submit.content)
        assert accepted.shared_fields == decision.shared_fields
    else:  # REVIEW: held unsent for a second person
        assert submit.status_code == 202, submit.text
        accepted = SubmitResponse.model_validate_json(submit.content)
        assert (accepted.status, accepted.review_id) == ("review_pending", accepted.id)
        assert accepted.shared_fields == decision.shared_fields
