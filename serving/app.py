"""The HTTP layer: `create_app(config)` builds the Litestar app around a `SearchService`.

Handlers are thin: they read the request, call the service (injected as the `service`
dependency; the search handler, the hot path, reads it from the app state) and shape the
answer. Every error the service raises on purpose becomes a JSON
4xx (or 503) here, with the message as ``detail``; no input is meant to cause a 500, and any
other exception is a 500 logged with its traceback.

Endpoints: ``POST /search``, ``POST /clicks``, ``GET /images/{id}``, ``GET /samples``,
``GET /`` (the search page), ``GET /experiments``, ``GET /experiments/{id}``, the admin
endpoints (``POST /experiments``, ``PATCH /experiments/{id}``, ``POST /experiments/{id}/start``
and ``/stop``, which need ``Authorization: Bearer <token>``), ``GET /health``,
``GET /metrics`` and the OpenAPI schema under ``/schema`` (``/schema/openapi.json``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Annotated, Any, Final, TypeVar, cast

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, patch, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, FormMultiDict, UploadFile
from litestar.di import NamedDependency, Provide
from litestar.enums import ScopeType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    PermissionDeniedException,
)
from litestar.exceptions.responses import create_exception_response
from litestar.handlers import ASGIRouteHandler, BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.types import (
    ASGIApp,
    Empty,
    ExceptionHandlersMap,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    Scope,
    Send,
)
from PIL import UnidentifiedImageError

from analysis.schema import Design
from rankers.base import Ranker
from rankers.corpus import Corpus
from rankers.embedder import SessionPool
from rankers.errors import ImageError
from serving.api import (
    ClickIn,
    ClickOut,
    ExperimentIn,
    ExperimentOut,
    ExperimentPatch,
    Health,
    Sample,
    SearchIn,
    SearchOut,
)
from serving.config import Config, ExperimentConfig, default_config
from serving.errors import (
    ConfigError,
    ConflictError,
    ExperimentError,
    InvalidRequestError,
    NotFoundError,
    UnavailableError,
    UploadTooLargeError,
)
from serving.loading import check_rankers, load_corpus, load_ranker
from serving.metrics import CONTENT_TYPE, Metrics
from serving.service import SearchService, UploadedImage

__all__ = ["UNIT_COOKIE", "UNIT_HEADER", "create_app"]

logger = logging.getLogger(__name__)

UNIT_COOKIE: Final = "braid_unit"
"""The cookie that carries the unit id between searches."""

UNIT_HEADER: Final = "X-Unit-Id"
"""The header a client may use to name its unit id."""

_UNIT_ID: Final = re.compile(r"[\x21-\x7e]{1,128}")  # fullmatch: "$" would pass a final "\n"
_ONE_YEAR: Final = 365 * 24 * 3600
_COOKIE_SAFE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~:]+")
_MULTIPART_SLACK: Final = 64 * 1024
_FORM_PARTS: Final = 16  # a search form has five fields at most
_FIELD_MAX: Final = 128  # characters of a form's text field (ids and the page number)
_JSON_MAX_BYTES: Final = 64 * 1024  # a JSON search is a few ids: anything larger is refused
_STATIC: Final = {"app.js": "text/javascript", "style.css": "text/css"}
"""Media types without their charset: Litestar adds "; charset=utf-8" to every text/ type."""
_METRICS_MEDIA: Final = CONTENT_TYPE.removesuffix("; charset=utf-8")


# -- errors ---------------------------------------------------------------------------------


def _status_of(error: Exception) -> int:
    if isinstance(error, UploadTooLargeError):
        return 413
    if isinstance(error, InvalidRequestError | ConfigError):
        return 400
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, UnavailableError):
        return 503
    if isinstance(error, ImageError):
        # Bytes Pillow cannot identify are an unsupported media type; the rest are images
        # that are broken (truncated, corrupt) or refused (too many pixels).
        return 415 if isinstance(error.__cause__, UnidentifiedImageError) else 422
    return 500


def _error_response(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    status = _status_of(error)
    if status >= 500 and not isinstance(error, UnavailableError):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        detail = "internal server error"
    else:
        detail = str(error)
    service: SearchService = request.app.state.service
    reason = error.reason if isinstance(error, ExperimentError) else None
    service.metrics.refused.labels(reason or type(error).__name__).inc()
    headers = (
        {"Retry-After": str(error.retry_after)} if isinstance(error, UnavailableError) else None
    )
    return Response({"status_code": status, "detail": detail}, status_code=status, headers=headers)


def _unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """Any other exception: logged with its traceback (Litestar's own handler logs nothing
    here, as the app sets no logging config), answered with a bare 500. Litestar's own HTTP
    errors of status 500 (a client gone before its body arrived) come here too: they are
    answered as Litestar does, without a traceback."""
    if isinstance(error, HTTPException):
        return create_exception_response(request, error)
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return Response({"status_code": 500, "detail": "internal server error"}, status_code=500)


# -- request plumbing -----------------------------------------------------------------------


def _service(request: Request[Any, Any, Any]) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _admin(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: the admin endpoints need ``Authorization: Bearer <token>``."""
    service: SearchService = connection.app.state.service
    token = service.config.admin_token
    if not token:
        raise PermissionDeniedException(
            "the admin endpoints are disabled: set BRAID_ADMIN_TOKEN (or server.admin_token)"
        )
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    # Compared as bytes (compare_digest refuses str beyond ASCII): the header's own bytes
    # (Litestar decodes headers as latin-1) against the token's UTF-8.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode()
    ):
        raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")


def _unit_id(scope: Scope, receive: Receive, field_value: str | None) -> tuple[str, bool]:
    """The unit id (field, then header, then cookie) and whether it is newly made.

    The header and the cookie are parsed only when the field is empty.
    """
    value = field_value
    if not value:
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive)
        value = connection.headers.get(UNIT_HEADER) or connection.cookies.get(UNIT_COOKIE)
    if not value:
        return uuid.uuid4().hex, True
    if not _UNIT_ID.fullmatch(value):
        raise InvalidRequestError("unit id must be 1-128 printable ASCII characters without spaces")
    return value, False


def _media_type(scope: Scope) -> str:
    """The request's media type ("" if none), from the raw ASGI header list: building
    Litestar's parsed `Headers` costs the search path microseconds a request."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":  # lower case by the ASGI spec; not trusted
            media: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return media
    return ""


@dataclass(slots=True)
class _SearchForm:
    corpus_id: str | None = None
    query_id: str | None = None
    unit_id: str | None = None
    page: int = 1
    upload: UploadedImage | None = None
    extra: list[str] = field(default_factory=list)


async def _read_search(scope: Scope, receive: Receive, max_bytes: int) -> _SearchForm:
    media = _media_type(scope)
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await Request[Any, Any, Any](scope, receive).form()
        except (UnicodeDecodeError, LookupError) as error:  # a field's bytes or its charset
            raise InvalidRequestError(f"a form field cannot be decoded: {error}") from None
        except ClientException as error:
            # Litestar's word for too many parts (a plain ClientException; its subclass
            # RequestEntityTooLarge, a body over the limit, says the same and stays a 413).
            if type(error) is not ClientException or error.detail != "Request Entity Too Large":
                raise
            raise UploadTooLargeError(
                f"a search form has at most {_FORM_PARTS} parts (fields and files)"
            ) from None
        try:
            return await _search_form(form, max_bytes)
        finally:  # every file part, whichever field refused the form
            for _, value in form.multi_items():
                if isinstance(value, UploadFile):
                    await value.close()
    if media in ("application/json", ""):
        body = await _small_body(receive, _JSON_MAX_BYTES)
        try:
            parsed = msgspec.json.decode(body or b"{}", type=SearchIn)
        except msgspec.ValidationError as error:
            raise InvalidRequestError(f"invalid search: {error}") from None
        except msgspec.DecodeError as error:
            raise InvalidRequestError(f"body is not valid JSON: {error}") from None
        return _SearchForm(parsed.corpus_id, parsed.query_id, parsed.unit_id, parsed.page)
    raise HTTPException(
        status_code=415,
        detail=f"unsupported content type {media!r}: send multipart/form-data (with an "
        "'image' file) or JSON",
    )


async def _search_form(form: FormMultiDict, max_bytes: int) -> _SearchForm:
    """The search a form asks for (its files are closed by the caller)."""
    out = _SearchForm()
    seen: set[str] = set()
    for key, value in form.multi_items():
        if key in seen:
            raise InvalidRequestError(f"field {key[:64]!r} is given more than once")
        seen.add(key)
        if key == "image":
            if not isinstance(value, UploadFile):
                raise InvalidRequestError("field 'image' must be a file upload")
            data = await value.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise UploadTooLargeError(f"upload is over the limit of {max_bytes:,} bytes")
            out.upload = UploadedImage(data, value.content_type)
        elif key in ("corpus_id", "query_id", "unit_id", "page"):
            if not isinstance(value, str):
                raise InvalidRequestError(f"field {key!r} must be text, not a file")
            if len(value) > _FIELD_MAX:  # as the JSON body's fields
                raise InvalidRequestError(f"field {key!r} is over {_FIELD_MAX} characters long")
            if key == "page":
                out.page = _page_number(value)
            elif value:
                setattr(out, key, value)
        else:
            out.extra.append(key)
    if out.extra:
        named = ", ".join(repr(key[:64]) for key in sorted(out.extra)[:5])
        more = f" and {len(out.extra) - 5} more" if len(out.extra) > 5 else ""
        raise InvalidRequestError(
            f"unknown fields {named}{more}; known: image, corpus_id, query_id, unit_id, page"
        )
    return out


async def _small_body(receive: Receive, max_bytes: int) -> bytes:
    """The body of a JSON search, read straight from the ASGI messages.

    Raises:
        UploadTooLargeError: The body is over `max_bytes`.
        InvalidRequestError: The client left before sending all of it.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise InvalidRequestError("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise UploadTooLargeError(f"a JSON search is over the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _page_number(value: str) -> int:
    try:
        page = int(value)
    except ValueError:
        raise InvalidRequestError(f"page must be an integer, got {value[:32]!r}") from None
    if page < 1:
        raise InvalidRequestError(f"page must be >= 1, got {page}")
    return page


@dataclass
class _SearchOperation(Operation):
    """`POST /search` reads its body by hand (JSON or multipart): document both."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING, min_length=1, max_length=128)
        fields = {
            "corpus_id": text,
            "query_id": text,
            "unit_id": text,
            "page": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=1000),
        }
        self.request_body = RequestBody(
            required=True,
            description="A corpus image id, an earlier upload's query id, or an image upload.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties=dict(fields),
                        additional_properties=False,
                    )
                ),
                "multipart/form-data": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "image": Schema(type=OpenAPIType.STRING, format="binary"),  # type: ignore[arg-type]
                            **fields,
                        },
                    )
                ),
            },
        )


# -- handlers -------------------------------------------------------------------------------


class _JSONAnswer:
    """A 200 JSON answer with its cookie, sent as is.

    `Response` (and `ASGIResponse`) normalise headers through a mutable header mapping, which
    costs the search path about 8 us a request; these headers need none of it.
    """

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, cookie: str) -> None:
        self.body = body
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"set-cookie", cookie.encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": self.headers,
        }
        await send(start)
        body: HTTPResponseBodyEvent = {
            "type": "http.response.body",
            "body": self.body,
            "more_body": False,
        }
        await send(body)


_SEARCH_ENCODER: Final = msgspec.json.Encoder()


_ALLOW: Final = [(b"allow", b"POST, OPTIONS")]
_SEARCH_DESCRIPTION: Final = (
    "Search by an uploaded image (multipart field `image`), a corpus image id, or an earlier "
    "upload's query id. The unit id comes from the `unit_id` field, the X-Unit-Id header or "
    "the braid_unit cookie (a new one is made and set as the cookie otherwise). `page` = 2 "
    "continues page 1's draft without repeating it."
)


class _SearchRoute(ASGIRouteHandler):
    """The ASGI route handler of `search`, with the body limit `Request.form` asks for.

    `Request.form` (uploads) asks the route for its body limit: HTTP handlers resolve it from
    their layers, ASGI handlers do not, so this one does the same.
    """

    def resolve_request_max_body_size(self) -> int | None:
        for layer in reversed(self.ownership_layers[:-1]):  # the routers, then the app
            limit = getattr(layer, "request_max_body_size", Empty)
            if limit is not Empty:
                return cast("int | None", limit)
        return None


@_SearchRoute("/search", copy_scope=False)
async def search(scope: Scope, receive: Receive, send: Send) -> None:
    """Search by an uploaded image, a corpus image id, or an earlier upload's query id.

    The unit id comes from the `unit_id` field, the X-Unit-Id header or the braid_unit cookie
    (a new one is made and set as the cookie otherwise). `page` = 2 continues page 1's draft.

    An ASGI route handler: Litestar routes the request here (the app's middleware and
    exception handlers apply), and the handler reads the request and sends its answer itself.
    It skips Litestar's HTTP handler pipeline (signature model, `Request`, response), a large
    share of this hot path's cost. `_document_search` adds the operation to the OpenAPI schema.
    """
    if scope["type"] != ScopeType.HTTP or scope["method"] != "POST":
        if scope["type"] == ScopeType.HTTP and scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": _ALLOW})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        raise MethodNotAllowedException(headers={"Allow": "POST, OPTIONS"})
    service: SearchService = scope["litestar_app"].state.service
    form = await _read_search(scope, receive, service.config.limits.max_upload_bytes)
    unit_id, _ = _unit_id(scope, receive, form.unit_id)
    result = await service.search(
        unit_id=unit_id,
        page=form.page,
        corpus_id=form.corpus_id,
        query_id=form.query_id,
        upload=form.upload,
    )
    await _JSONAnswer(_SEARCH_ENCODER.encode(result), _unit_cookie(unit_id))(scope, receive, send)


def _document_search(app: Litestar) -> None:
    """Add `POST /search` to the app's OpenAPI schema, as Litestar documents an HTTP handler of
    the same signature (Litestar leaves ASGI handlers out of the schema)."""

    @post(
        "/search",
        operation_class=_SearchOperation,
        status_code=200,
        responses={200: ResponseSpec(SearchOut, description="The page of results.")},
        summary="Search",
        operation_id="SearchSearch",
        description=_SEARCH_DESCRIPTION,
    )
    async def search_schema() -> SearchOut:  # documents `search`; never routed
        raise NotImplementedError

    documented = Litestar(
        route_handlers=[search_schema], openapi_config=app.openapi_config, logging_config=None
    ).openapi_schema
    schema = app.openapi_schema  # built once and kept: what /schema serves
    assert documented.paths is not None
    schema.paths = {"/search": documented.paths["/search"], **(schema.paths or {})}
    for name, component in documented.components.schemas.items():
        known = schema.components.schemas.setdefault(name, component)
        if known != component:
            raise RuntimeError(f"two different OpenAPI components are named {name!r}")


def _unit_cookie(unit_id: str) -> str:
    """The Set-Cookie value carrying the unit id (what Litestar's `Cookie` renders, built
    directly when the id needs no quoting: that costs a few microseconds, not tens)."""
    if _COOKIE_SAFE.fullmatch(unit_id):
        return f"{UNIT_COOKIE}={unit_id}; HttpOnly; Max-Age={_ONE_YEAR}; Path=/; SameSite=lax"
    cookie = Cookie(
        key=UNIT_COOKIE, value=unit_id, max_age=_ONE_YEAR, httponly=True, samesite="lax"
    )
    return cookie.to_header(header="")


class _Request(Request[Any, Any, Any]):
    """Litestar's request, with a 400 for a JSON body nested too deep to decode (msgspec
    raises RecursionError, a 500 otherwise)."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("the JSON body nests too deeply") from None


_Body = TypeVar("_Body", bound=msgspec.Struct)


async def _strict(request: Request[Any, Any, Any], kind: type[_Body]) -> _Body:
    """The JSON body as `kind` under msgspec's strict rules, as `/search` reads its own: the
    handler's `data` (which documents the body) was converted leniently ("1" for 1)."""
    try:
        return msgspec.json.decode(await request.body(), type=kind)  # the body is cached
    except msgspec.ValidationError as error:
        raise InvalidRequestError(f"invalid body: {error}") from None


@post("/clicks")
async def clicks(
    request: Request[Any, Any, Any],
    data: JSONBody[ClickIn],
    service: NamedDependency[SearchService],
) -> Response[ClickOut]:
    """Log a click on a shown position (201; 200 when the click id was logged before)."""
    data = await _strict(request, ClickIn)
    out = await service.click(
        impression_id=data.impression_id, position=data.position, click_id=data.click_id
    )
    return Response(out, status_code=200 if out.duplicate else 201)


@get("/images/{image_id:path}")
async def image(
    image_id: FromPath[str],
    service: NamedDependency[SearchService],
    thumb: Annotated[bool, QueryParameter(description="A thumbnail (at most 64 px).")] = False,
) -> Response[bytes]:
    """A corpus image as PNG."""
    data = service.image_png(image_id.lstrip("/"), thumb=thumb)
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"}
    )


@get("/samples")
async def samples(
    service: NamedDependency[SearchService],
    count: Annotated[int, QueryParameter(ge=1, le=48)] = 12,
    seed: Annotated[int, QueryParameter(ge=0, le=2**31)] = 0,
) -> list[Sample]:
    """Corpus images to pick from (the same ones for the same seed)."""
    return [
        Sample(image_id, f"{service.image_url(image_id)}?thumb=1")
        for image_id in service.sample_images(count, seed=seed)
    ]


@get("/experiments")
async def experiments(service: NamedDependency[SearchService]) -> list[ExperimentOut]:
    """Every experiment and its current version."""
    return service.experiments()


@get("/experiments/{experiment_id:str}")
async def experiment(
    experiment_id: FromPath[str],
    service: NamedDependency[SearchService],
    version: Annotated[int | None, QueryParameter(ge=1, le=2**31)] = None,
) -> ExperimentOut:
    """One experiment with live figures (impressions, wins, preference with its interval,
    sequential p-value, sample-ratio check) of its current or the given version."""
    return await service.experiment(experiment_id, version=version)


_ADMIN: Final[dict[str, Any]] = {"guards": [_admin], "security": [{"bearer": []}]}


@post("/experiments", status_code=201, **_ADMIN)
async def create_experiment(
    request: Request[Any, Any, Any],
    data: JSONBody[ExperimentIn],
    service: NamedDependency[SearchService],
) -> ExperimentOut:
    """Create an experiment (started unless `running` is false). Needs the admin token."""
    data = await _strict(request, ExperimentIn)
    try:
        design = Design(data.design)
    except ValueError:
        raise InvalidRequestError(
            f"design must be 'ab' or 'interleaving', got {data.design!r}"
        ) from None
    weights: tuple[float, ...] = ()
    if data.weights is not None:
        weights = tuple(data.weights)
    elif design is Design.AB:
        weights = (1.0,) * len(data.rankers)
    method = data.method
    if design is Design.INTERLEAVING and method is None:
        method = "team_draft"
    config = ExperimentConfig(
        id=data.id,
        design=design,
        rankers=tuple(data.rankers),
        weights=weights,
        method=method,
        options=dict(data.options or {}),
        layer=data.layer,
        traffic=data.traffic,
        page_size=data.page_size,
        salt=data.salt,
        running=data.running,
    )
    return service.create_experiment(config)


@patch("/experiments/{experiment_id:str}", **_ADMIN)
async def update_experiment(
    request: Request[Any, Any, Any],
    experiment_id: FromPath[str],
    data: JSONBody[ExperimentPatch],
    service: NamedDependency[SearchService],
) -> ExperimentOut:
    """Change weights (a new version with a new salt), traffic or page size. Needs the token."""
    data = await _strict(request, ExperimentPatch)
    return service.update_experiment(
        experiment_id, weights=data.weights, traffic=data.traffic, page_size=data.page_size
    )


@post("/experiments/{experiment_id:str}/start", status_code=200, **_ADMIN)
async def start_experiment(
    experiment_id: FromPath[str], service: NamedDependency[SearchService]
) -> ExperimentOut:
    """Start an experiment. Needs the admin token."""
    return service.start_experiment(experiment_id)


@post("/experiments/{experiment_id:str}/stop", status_code=200, **_ADMIN)
async def stop_experiment(
    experiment_id: FromPath[str], service: NamedDependency[SearchService]
) -> ExperimentOut:
    """Stop an experiment. Needs the admin token."""
    return service.stop_experiment(experiment_id)


@get("/health", responses={503: ResponseSpec(Health, description="The event log failed.")})
async def health(service: NamedDependency[SearchService]) -> Response[Health]:
    """Liveness and the event log's counters: 503 once the event log has failed (the server
    refuses every search then, and must be restarted)."""
    out = service.health()
    return Response(out, status_code=200 if out.status == "ok" else 503)


@get("/metrics", include_in_schema=True)
async def metrics(service: NamedDependency[SearchService]) -> Response[bytes]:
    """Prometheus metrics (text exposition format)."""
    service.health()  # refresh the journal gauges
    return Response(service.metrics.render(), media_type=_METRICS_MEDIA)


@get("/", media_type=MediaType.HTML)
async def index() -> str:
    """The search page."""
    return resources.files("serving").joinpath("static/index.html").read_text(encoding="utf-8")


@get("/static/{name:str}")
async def static(name: FromPath[str]) -> Response[bytes]:
    """The search page's script and style sheet."""
    if name not in _STATIC:
        raise NotFoundError(f"no static file {name!r}")
    data = resources.files("serving").joinpath(f"static/{name}").read_bytes()
    return Response(data, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


# -- metrics middleware ---------------------------------------------------------------------


async def _close_pools(pools: Mapping[int, SessionPool]) -> None:
    """Finish the models' pending work and stop their workers (off the loop: it joins)."""
    for pool in pools.values():
        await asyncio.to_thread(pool.close)


def _metrics_middleware(app: ASGIApp, metrics: Metrics) -> ASGIApp:
    """Counts requests and their latency by route template and status.

    A plain ASGI wrapper rather than Litestar's `ASGIMiddleware`, whose per-request
    bookkeeping cost the search path several microseconds.
    """
    route_metrics = metrics.route
    clock = time.perf_counter

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = clock()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            count, latency = route_metrics(str(scope.get("path_template", "unmatched")), status)
            count.inc()
            latency.observe(clock() - started)

    return middleware


# -- the app --------------------------------------------------------------------------------


def create_app(
    config: Config | None = None,
    *,
    rankers: Mapping[str, Ranker] | None = None,
    corpus: Corpus | None = None,
) -> Litestar:
    """Build the app (loading the corpus and rankers now; logs open on start-up).

    Args:
        config: The configuration; None: the embedded defaults.
        rankers: Ranker objects to use instead of building the configured ones of the same
            name (tests inject slow or failing rankers this way).
        corpus: The corpus to serve instead of loading the configured one.

    Raises:
        ConfigError: The corpus or a ranker cannot be loaded.
    """
    config = config or default_config()
    corpus = corpus if corpus is not None else load_corpus(config.corpus)
    given = dict(rankers or {})
    check_rankers(given)
    pools: dict[int, SessionPool] = {}  # the models' sessions, shared (see load_ranker)
    built = {
        name: given[name] if name in given else load_ranker(ranker, corpus, pools=pools)
        for name, ranker in config.rankers.items()
    }
    service = SearchService(config, corpus, built)
    handlers: ExceptionHandlersMap = {
        ExperimentError: _error_response,
        ImageError: _error_response,
        500: _unexpected_error,  # any exception no other handler takes, and HTTP 500s
    }
    app = Litestar(
        route_handlers=[
            search,
            clicks,
            image,
            samples,
            experiments,
            experiment,
            create_experiment,
            update_experiment,
            start_experiment,
            stop_experiment,
            health,
            metrics,
            index,
            static,
        ],
        dependencies={"service": Provide(_service, sync_to_thread=False)},
        exception_handlers=handlers,
        request_class=_Request,
        multipart_form_part_limit=_FORM_PARTS,
        on_startup=[service.open],
        on_shutdown=[service.close, partial(_close_pools, pools)],
        middleware=[DefineMiddleware(_metrics_middleware, metrics=service.metrics)],
        request_max_body_size=config.limits.max_upload_bytes + _MULTIPART_SLACK,
        openapi_config=OpenAPIConfig(
            title="Braid search",
            version="1",
            description="Visual search that runs interleaving and A/B experiments.",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
            ),
        ),
        debug=False,
        logging_config=None,
    )
    app.state.service = service
    _document_search(app)
    return app
