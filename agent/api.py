"""The agent's local HTTP API (aiohttp): authenticate, parse, call the service, map errors.

Rules:
1. This is a thin adapter. Handlers authenticate (``agent.auth``), parse strictly
   (``agent.api_models``), call one :class:`~agent.api_models.AgentService` method and serialise
   its answer. No business logic lives here.
2. Every error leaves as ``application/problem+json`` (RFC 9457): project errors with their own
   ``http_status`` (plus ``errors`` / ``reasons`` where present, and ``Retry-After`` for one
   with a ``retry_after``); aiohttp's own 404, 405 and 413
   are re-rendered the same way; ANY other exception is a bug, logged (class and stack frames,
   never its message, which could hold payload values) and answered with an opaque 500.
3. Order of checks: route and method, then the bearer token (401) and scope (403), then the
   ``X-Actor-*`` headers (400, rule 7), then the query (unknown names, bad values: 400), then
   the body: size (413), content type, UTF-8 JSON, a JSON object, nesting depth, then the
   model (400).
   Payload validation against the message type is the service's (422).
4. Nothing a client sent (payload values, tokens) is echoed into an error or a log line; field
   *paths* are named, truncated.
5. ``/livez``, ``/readyz`` (probes, ``agent.probes``), ``/healthz`` (kept for existing
   monitors) and ``/v1/openapi.json`` need no token; ``/metrics`` needs the ``admin`` scope
   (counters reveal traffic volumes between agencies; Prometheus sends bearer tokens);
   ``/v1/isas`` needs any valid token. ``/metrics`` is the service's registry (its counters,
   gauges and the process collectors, ``agent.metrics``) followed by this layer's own:
   requests by method, route template and status, and a latency histogram.
6. Every response carries ``X-Request-Id``, and so does every log line written while handling
   it (``agent.logs``): the client's own id when it is 1-64 of ``A-Z a-z 0-9 . _ : -`` (the
   one client value echoed, being an opaque id by construction), else a fresh random one.
7. Every authenticated call names the person acting in ``X-Actor-Id`` and ``X-Actor-Role``,
   and for a disclosure the reason in ``X-Actor-Justification`` (``agent.actor``); the service
   records them in every audit entry the call causes. Each handler states what it needs
   (:data:`agent.openapi.OPERATIONS` documents the same, ``actor``): with ``require_actor``
   (``[api] require_actor``, the default) a call about messages or reviews (submit, preview,
   status, inbox, ack, the review queue, the event feed) without a person is refused (400
   ``actor-required``), and a disclosure (submit, inbox) without a justification too (400
   ``justification-required``). Without
   ``require_actor``, or for the calls about the agent itself (``/v1/isas``, ``/metrics``),
   a call naming nobody is recorded as the system ``system:<client>``; an ISA whose flow says
   ``log: dpa2018_s62`` still needs the person and the reason (``agent.service`` rule 10).
   Erasure on request, legal holds and a review's approve / narrow / return need both always
   (``always``, ``agent.service`` rules 11 and 12; a body's ``justification`` then replaces the
   header's for that act). A referral the ISA holds for review needs its submitter named
   even without ``require_actor`` (400 ``actor-required``, ``agent.service`` rule 12).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from agent.actor import (
    ACTOR_HEADERS,
    Caller,
    parse_actor,
    require_accountable,
    require_person,
)
from agent.api_models import (
    DEFAULT_INBOX_LIMIT,
    ID_PATTERN,
    MAX_CURSOR,
    MAX_INBOX_LIMIT,
    AgentService,
    ApproveRequest,
    CaseEventRequest,
    NarrowRequest,
    Problem,
    RequestInvalid,
    ReturnRequest,
    SubmitRequest,
    parse_request,
)
from agent.auth import ApiClient, Authenticator, Scope
from agent.errors import BadRequest, NotFound, PayloadTooLarge
from agent.logs import REQUEST_ID, request_id_for
from agent.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from agent.openapi import build_openapi
from federation.errors import IsaRelayError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "create_app",
    "problem_response",
    "serving",
]

DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
#: Ids in paths are matched by the route itself, so ``/v1/messages/preview`` is never an id
#: and a malformed id is simply a URL the API does not have (404).
_ID_ROUTE: Final = ID_PATTERN.removeprefix("^").removesuffix("$")
_INT_PATTERN: Final = re.compile(r"^[0-9]{1,19}$")
_PROBLEM_TYPE: Final = "urn:isa-relay:problem:"
_log = logging.getLogger("agent.api")

_SERVICE: Final = web.AppKey("isa_service", AgentService)
_AUTH: Final = web.AppKey("isa_auth", Authenticator)
_OPENAPI: Final = web.AppKey("isa_openapi", bytes)
_LIMIT: Final = web.AppKey("isa_max_body", int)
_REQUIRE_ACTOR: Final = web.AppKey("isa_require_actor", bool)
REQUEST_ID_HEADER: Final = "X-Request-Id"
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Rule 7: what a handler needs of the X-Actor-* headers under ``require_actor``.
ActorNeed = Literal["always", "justified", "person", "optional"]


# --- app factory ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: any free port) and yield the bound port.

    Leaving the block stops accepting, lets in-flight requests finish (aiohttp's graceful
    shutdown) and closes everything, also on cancellation.
    """
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def create_app(
    service: AgentService,
    clients: Iterable[ApiClient],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    require_actor: bool = True,
) -> web.Application:
    """The aiohttp application serving DESIGN's local API over ``service``; ``require_actor``
    refuses calls about messages that name no person (rule 7)."""
    app = web.Application(
        middlewares=[_request_id_middleware, _problem_middleware], client_max_size=max_body_bytes
    )
    app[_SERVICE] = service
    app[_AUTH] = Authenticator(clients)
    app[_LIMIT] = max_body_bytes
    app[_REQUIRE_ACTOR] = require_actor
    app[_HTTP_METRICS] = _HttpMetrics()
    document = build_openapi(max_body_bytes=max_body_bytes, require_actor=require_actor)
    app[_OPENAPI] = json.dumps(document).encode("utf-8")
    router = app.router
    router.add_post("/v1/messages", _submit)
    router.add_post("/v1/messages/preview", _preview)
    router.add_get(f"/v1/messages/{{id:{_ID_ROUTE}}}", _message, allow_head=False)
    router.add_get("/v1/inbox", _inbox, allow_head=False)
    router.add_post(f"/v1/inbox/{{id:{_ID_ROUTE}}}/ack", _ack)
    router.add_post(f"/v1/inbox/{{id:{_ID_ROUTE}}}/erase", _erase)
    router.add_put(f"/v1/inbox/{{id:{_ID_ROUTE}}}/hold", _hold)
    router.add_delete(f"/v1/inbox/{{id:{_ID_ROUTE}}}/hold", _release)
    router.add_post(f"/v1/inbox/{{id:{_ID_ROUTE}}}/events", _case_event)
    router.add_get("/v1/reviews", _reviews, allow_head=False)
    router.add_get(f"/v1/reviews/{{id:{_ID_ROUTE}}}", _review, allow_head=False)
    router.add_post(f"/v1/reviews/{{id:{_ID_ROUTE}}}/approve", _approve)
    router.add_post(f"/v1/reviews/{{id:{_ID_ROUTE}}}/narrow", _narrow)
    router.add_post(f"/v1/reviews/{{id:{_ID_ROUTE}}}/return", _return)
    router.add_get("/v1/events", _events, allow_head=False)
    router.add_get("/v1/isas", _isas, allow_head=False)
    router.add_get("/healthz", _healthz, allow_head=False)
    router.add_get("/livez", _livez, allow_head=False)
    router.add_get("/readyz", _readyz, allow_head=False)
    router.add_get("/metrics", _metrics, allow_head=False)
    router.add_get("/v1/openapi.json", _openapi, allow_head=False)
    return app


# --- handlers ------------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "justified")
    req = await _read_model(request, SubmitRequest)
    answer = await request.app[_SERVICE].submit(caller, req)
    where = "reviews" if answer.status == "review_pending" else "messages"
    return _json(answer, status=202, headers={"Location": f"/v1/{where}/{answer.id}"})


async def _preview(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "person")
    req = await _read_model(request, SubmitRequest)
    return _json(await request.app[_SERVICE].preview(caller, req))


async def _message(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "person")
    return _json(await request.app[_SERVICE].message(caller, _path_id(request)))


async def _inbox(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "justified", query=("after", "limit"))
    after = _query_int(request, "after", default=0, low=0, high=MAX_CURSOR)
    limit = _query_int(request, "limit", default=DEFAULT_INBOX_LIMIT, low=1, high=MAX_INBOX_LIMIT)
    return _json(await request.app[_SERVICE].inbox(caller, after, limit))


async def _ack(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "person")
    await request.app[_SERVICE].ack(caller, _path_id(request))
    return web.Response(status=204)


async def _erase(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "always")
    await request.app[_SERVICE].erase(caller, _path_id(request))
    return web.Response(status=204)


async def _hold(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "always")
    await request.app[_SERVICE].legal_hold(caller, _path_id(request), True)
    return web.Response(status=204)


async def _release(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "always")
    await request.app[_SERVICE].legal_hold(caller, _path_id(request), False)
    return web.Response(status=204)


async def _case_event(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "receive", "person")
    req = await _read_model(request, CaseEventRequest)
    await request.app[_SERVICE].case_event(caller, _path_id(request), req.event)
    return web.Response(status=204)


async def _reviews(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "person", query=("after", "limit"))
    after, limit = _page(request)
    return _json(await request.app[_SERVICE].reviews(caller, after, limit))


async def _review(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "person")
    return _json(await request.app[_SERVICE].review(caller, _path_id(request)))


async def _approve(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "always")
    req = await _read_model(request, ApproveRequest, optional=True)
    service, id = request.app[_SERVICE], _path_id(request)
    return _json(await service.approve_review(caller, id, req))


async def _narrow(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "always")
    req = await _read_model(request, NarrowRequest)
    service, id = request.app[_SERVICE], _path_id(request)
    return _json(await service.narrow_review(caller, id, req))


async def _return(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "always")
    req = await _read_model(request, ReturnRequest)
    service, id = request.app[_SERVICE], _path_id(request)
    return _json(await service.return_review(caller, id, req))


async def _events(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "send", "person", query=("after", "limit"))
    after, limit = _page(request)
    return _json(await request.app[_SERVICE].events(caller, after, limit))


async def _isas(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, None, "optional")
    summaries = await request.app[_SERVICE].isas(caller)
    body = "[" + ",".join(s.model_dump_json() for s in summaries) + "]"
    return web.Response(text=body, content_type="application/json")


async def _healthz(request: web.Request) -> web.StreamResponse:
    _check_query(request, ())
    health = await request.app[_SERVICE].health()
    return _json(health, status=health.http_status)


async def _livez(request: web.Request) -> web.StreamResponse:
    _check_query(request, ())
    return _json(await request.app[_SERVICE].liveness())


async def _readyz(request: web.Request) -> web.StreamResponse:
    _check_query(request, ())
    readiness = await request.app[_SERVICE].readiness()
    return _json(readiness, status=503 if readiness.status == "not_ready" else 200)


async def _metrics(request: web.Request) -> web.StreamResponse:
    caller = _authorize(request, "admin", "optional")
    service_text = (await request.app[_SERVICE].metrics_text(caller)).rstrip("\n")
    text = (service_text + "\n" if service_text else "") + request.app[_HTTP_METRICS].render()
    return web.Response(
        body=text.encode("utf-8"),
        headers={"Content-Type": METRICS_CONTENT_TYPE},
    )


async def _openapi(request: web.Request) -> web.StreamResponse:
    _check_query(request, ())
    return web.Response(body=request.app[_OPENAPI], content_type="application/json")


# --- parsing -------------------------------------------------------------------------------


def _authorize(
    request: web.Request, scope: Scope | None, need: ActorNeed, *, query: tuple[str, ...] = ()
) -> Caller:
    """Rule 3: the token and its scope, the actor (rule 7), then the query's names."""
    client = request.app[_AUTH].authorize(request.headers.get("Authorization"), scope)
    actor = parse_actor({name: request.headers.getall(name, []) for name in ACTOR_HEADERS})
    caller = Caller.system(client.name) if actor is None else Caller(client.name, actor)
    if need == "always":
        why = "an erasure, a legal hold or a review act always requires it"
        require_accountable(caller.actor, why)
    elif request.app[_REQUIRE_ACTOR] and need != "optional":
        why = "this agent requires it ([api] require_actor)"
        check = require_accountable if need == "justified" else require_person
        check(caller.actor, why)
    _check_query(request, query)
    return caller


def _check_query(request: web.Request, allowed: tuple[str, ...]) -> None:
    """Unknown query parameters are a 400, like unknown body fields (a typo never passes)."""
    unknown = sorted({name for name in request.query if name not in allowed})
    if unknown:
        errors = {name[:100] or "(empty)": "unknown query parameter" for name in unknown[:20]}
        raise RequestInvalid("unknown query parameter", errors)


def _page(request: web.Request) -> tuple[int, int]:
    after = _query_int(request, "after", default=0, low=0, high=MAX_CURSOR)
    limit = _query_int(request, "limit", default=DEFAULT_INBOX_LIMIT, low=1, high=MAX_INBOX_LIMIT)
    return after, limit


async def _read_model(request: web.Request, model: type[M], *, optional: bool = False) -> M:
    if optional and not request.body_exists:
        return model()
    limit = request.app[_LIMIT]
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    if request.content_type != "application/json":
        raise BadRequest("Content-Type must be application/json")
    if request.charset not in (None, "utf-8", "UTF-8"):
        raise BadRequest("the request body must be UTF-8")
    body = await request.read()  # aiohttp raises HTTPRequestEntityTooLarge past the limit
    return parse_request(model, body)


def _path_id(request: web.Request) -> str:
    return request.match_info["id"]


def _query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    values = request.query.getall(name, [])
    if not values:
        return default
    if len(values) > 1:
        raise RequestInvalid("repeated query parameter", {name: "give it at most once"})
    text = values[0]
    if not _INT_PATTERN.fullmatch(text) or not low <= int(text) <= high:
        raise RequestInvalid("bad query parameter", {name: f"must be an integer {low}..{high}"})
    return int(text)


# --- responses and errors ------------------------------------------------------------------


def _json(
    model: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=model.model_dump_json(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def problem_response(
    status: int, title: str, detail: str, *, kind: str, extra: Mapping[str, Any] | None = None
) -> web.Response:
    """An ``application/problem+json`` response."""
    problem = Problem(
        type=_PROBLEM_TYPE + kind,
        title=title,
        status=status,
        detail=detail,
        errors=(extra or {}).get("errors"),
        reasons=(extra or {}).get("reasons"),
    )
    return web.Response(
        text=problem.model_dump_json(exclude_none=True),
        status=status,
        content_type="application/problem+json",
    )


def _from_project_error(exc: IsaRelayError) -> web.Response:
    extra: dict[str, Any] = {}
    errors = getattr(exc, "errors", None)
    if isinstance(errors, dict) and errors:
        extra["errors"] = {str(k)[:200]: str(v)[:500] for k, v in errors.items()}
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list):
        extra["reasons"] = [str(r) for r in reasons]
    response = problem_response(
        exc.http_status, exc.title, exc.message, kind=_kind(type(exc).__name__), extra=extra
    )
    if exc.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="isa-relay"'
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int) and retry_after > 0:  # a 503 that retrying can cure
        response.headers["Retry-After"] = str(retry_after)
    return response


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    if exc.status == 413:
        return _from_project_error(PayloadTooLarge("the request body is too large"))
    if exc.status == 404:
        return _from_project_error(NotFound("no such resource"))
    response = problem_response(exc.status, exc.reason, exc.reason, kind=_kind(exc.reason))
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _from_bug(request: web.Request, exc: Exception) -> web.Response:
    incident = uuid.uuid4().hex[:12]
    frames = "; ".join(
        f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)
    )
    _log.error(
        "unhandled %s in %s %s (incident %s) at %s",
        type(exc).__name__,
        request.method,
        request.match_info.route.resource.canonical if request.match_info.route.resource else "?",
        incident,
        frames,
    )
    return problem_response(
        500, "Internal error", f"an internal error occurred (incident {incident})", kind="internal"
    )


def _kind(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])|\s+", "-", name).replace("--", "-").lower()


@web.middleware
async def _request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's log lines and its response carry one ``X-Request-Id`` (agent.logs rule
    2); at DEBUG, one access line per request (route template and status, never a body)."""
    request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
    token = REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
        response.headers[REQUEST_ID_HEADER] = request_id
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "(unmatched)"
        _log.debug("%s %s -> %d", request.method, route, response.status)
    finally:
        REQUEST_ID.reset(token)
    return response


@web.middleware
async def _problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        response = await handler(request)
    except IsaRelayError as exc:
        response = _from_project_error(exc)
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except Exception as exc:
        response = _from_bug(request, exc)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(unmatched)"
    request.app[_HTTP_METRICS].observe(
        request.method, route, response.status, time.perf_counter() - started
    )
    return response


class _HttpMetrics:
    """Requests by route template (bounded labels, never a raw URL) and a latency histogram.

    Their own registry: the service's holds the agent's counters and the process collectors.
    """

    BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "isa_api_requests",
            "HTTP requests to the local API, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "isa_api_request_seconds",
            "Local API request latency in seconds.",
            buckets=self.BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method if method in _METHODS else "OTHER", route, str(status)).inc()
        self.latency.observe(seconds)

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


_HTTP_METRICS: Final = web.AppKey("isa_http_metrics", _HttpMetrics)
