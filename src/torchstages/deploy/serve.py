"""``torchstages serve``: an HTTP service over an exported model (FastAPI + uvicorn).

Generic over data kinds. Images are uploaded as multipart parts, each decoded by the model's
reader (``deploy/readers.py``). Tables, texts and series are sent as JSON, which the kind's
service (``tables/serve.py``, ``text/serve.py``, ``series/serve.py``: its request model, its
/metadata, its answer) turns into the model's inputs with the functions ``torchstages predict``
uses. Every batch goes through the runner (``deploy/runtime.py``). Decoding and inference run in
worker threads, so the event loop keeps answering ``/health`` while a large batch computes;
uvicorn finishes in-flight requests on SIGTERM before it exits.
"""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, get_args

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from torchstages import paths
from torchstages.deploy.readers import (
    DEFAULT_MAX_PIXELS,
    InputTooLarge,
    InvalidPart,
    Reader,
    reader_for,
)
from torchstages.deploy.runtime import Runner, load_runner, top_k_rows
from torchstages.errors import UserError
from torchstages.io import six_decimals
from torchstages.kinds import Kind

__all__ = ["Limits", "create_app", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond them the answer is a 4xx, never a crash."""

    max_request_bytes: int = 32 << 20
    max_images: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked on the header (decompression bombs)
    top_k: int = 5  # default classes per input; a request may ask for fewer or more
    max_rows: int = 1024  # JSON kinds: rows, texts or history entries per request
    max_text_chars: int = 10_000  # per text; tokens beyond the model's max_len are cut anyway

    def read_by(self, kind: str, classifies: bool) -> dict[str, int]:
        """The limits a model of ``kind`` applies (what /metadata shows): no image limits for a
        text model, no ``top_k`` for a model without classes."""
        applies = _LIMIT_KINDS | {"top_k": _ALL_KINDS if classifies else frozenset()}
        return {k: v for k, v in asdict(self).items() if kind in applies.get(k, _ALL_KINDS)}


_ALL_KINDS = frozenset(get_args(Kind))
# a limit missing here applies to every kind
_LIMIT_KINDS = {
    "max_images": frozenset({"images"}),
    "max_pixels": frozenset({"images"}),
    "max_rows": frozenset({"table", "text", "series"}),
    "max_text_chars": frozenset({"text"}),
}


class JsonService(Protocol):
    """``POST /predict`` of a kind sent as JSON: one list field of inputs, answered in order."""

    field: str  # the request's list of inputs ("rows", "texts", "history"): max_rows applies
    request: type[BaseModel]  # the body, validated by FastAPI and shown at /docs

    def describe(self) -> dict[str, Any]:
        """What /metadata adds for the kind: the columns, tokenizer or window a request needs."""
        ...

    def predict(self, body: Any, k: int) -> dict[str, Any]:
        """The answer (without model_version); ``InvalidPart`` naming the bad input."""
        ...


# the kinds sent as JSON: module and class of their service, imported only when served
JSON_SERVICES = {
    "table": "torchstages.tables.serve:TableService",
    "text": "torchstages.text.serve:TextService",
    "series": "torchstages.series.serve:SeriesService",
}


class RequestError(Exception):
    """A bad request: answered as JSON ``{"error": ..., "part": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, part: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.part = status, message, part


def create_app(runner: Runner, limits: Limits = Limits()) -> FastAPI:
    """The service for one loaded model."""
    service = json_service(runner, limits)
    version = runner.version()
    metadata = _metadata(runner, version, limits, service)
    app = FastAPI(
        title="torchstages model",
        version=version[:12],
        description=f"{runner.metadata['kind']} model `{runner.path.name}` ({runner.format}). "
        + (
            f"Send JSON with a `{service.field}` list (GET /metadata says what each needs)."
            if service
            else f"Classes: {', '.join(runner.classes)}. Send inputs as multipart parts named "
            "`files`."
        ),
    )
    app.add_middleware(_BodyLimit, max_bytes=limits.max_request_bytes)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "part": exc.part}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own errors (a malformed multipart body, an unknown path) in the same shape
        detail = exc.detail
        if exc.status_code == 400 and _is_json(request):
            # FastAPI's "There was an error parsing the body": bytes that are not UTF-8, or
            # JSON nested deeper than Python's parser goes
            try:
                (await request.body()).decode("utf-8")
                detail = "the body is not JSON this server can read (nested too deeply?)"
            except UnicodeDecodeError as bad:
                detail = f"the body is not UTF-8 (byte {bad.object[bad.start]:#04x} at "
                detail += f"position {bad.start}): send JSON as UTF-8"
        return JSONResponse({"error": detail, "part": None}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            # its loc is ("body", character offset), which would read as a list index
            reason = first.get("ctx", {}).get("error", first["msg"])
            message = f"the body is not valid JSON: {reason} (at character {first['loc'][-1]})"
            return JSONResponse({"error": message, "part": None}, status_code=400)
        where = ".".join(str(p) for p in first["loc"])
        part = _part_of(first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}", "part": part}, status_code=422)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Answers while the model computes: inference runs off the event loop."""
        return {"status": "ok"}

    @app.get("/metadata")
    async def get_metadata() -> dict[str, Any]:
        """What the model takes and answers, formats, limits; ``model_version`` is the sha256
        of the served file."""
        return metadata

    if service is None:
        _add_upload_route(app, runner, limits, version)
    else:
        _add_json_route(app, service, limits, version, classifies=bool(runner.classes))
    return app


def json_service(runner: Runner, limits: Limits) -> JsonService | None:
    """The JSON service of a table, text or series model; None for a kind uploaded as files."""
    target = JSON_SERVICES.get(runner.metadata["kind"])
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)(runner, limits)


def _add_upload_route(app: FastAPI, runner: Runner, limits: Limits, version: str) -> None:
    reader = reader_for(runner.metadata, limits.max_pixels)

    @app.post("/predict")
    async def predict(
        files: Annotated[list[UploadFile], File(description="one part per input, in order")],
        k: Annotated[
            int | None, Query(ge=1, alias="top_k", description="classes per input")
        ] = None,
    ) -> dict[str, Any]:
        """Top-k classes and probabilities for each uploaded part, in the order sent."""
        if len(files) > limits.max_images:
            raise RequestError(
                413, f"{len(files)} inputs in one request; at most {limits.max_images}"
            )
        parts = [(_part_name(i, f), await f.read()) for i, f in enumerate(files)]
        n_top = min(k or limits.top_k, len(runner.classes))
        results = await run_in_threadpool(_infer, runner, reader, parts, n_top)
        return {"model_version": version, "predictions": results}


def _add_json_route(
    app: FastAPI, service: JsonService, limits: Limits, version: str, *, classifies: bool
) -> None:
    async def predict(
        body: BaseModel,
        k: Annotated[
            int | None, Query(ge=1, alias="top_k", description="classes per input")
        ] = None,
    ) -> dict[str, Any]:
        items = getattr(body, service.field)
        if k is not None and k > 1 and not classifies:  # as predict's --top-k refuses it
            raise RequestError(400, "top_k: this model predicts values, not classes", "top_k")
        if len(items) > limits.max_rows:
            raise RequestError(
                413,
                f"{len(items)} entries in {service.field}; at most {limits.max_rows} a request",
                service.field,
            )
        answer = await run_in_threadpool(_answer, service, body, k or limits.top_k)
        return {"model_version": version, **answer}

    # FastAPI reads the body's type from the annotation, and the kind's model is known only now
    # (this module's annotations are strings, resolved in its globals)
    predict.__annotations__["body"] = service.request
    predict.__doc__ = f"Predictions for each of `{service.field}`, in the order sent."
    app.post("/predict")(predict)


def _answer(service: JsonService, body: BaseModel, k: int) -> dict[str, Any]:
    try:
        return service.predict(body, k)
    except InvalidPart as exc:
        raise RequestError(exc.status, str(exc), exc.part) from None
    except Exception as exc:  # input the readers fail on in a way they do not name: still a 400
        log.warning("%s: unexpected failure", service.field, exc_info=True)
        raise RequestError(400, f"{service.field}: cannot use ({exc!r})", service.field) from None


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().endswith("json")


def _part_of(loc: tuple) -> str | None:
    """The request part a validation error is about: ``("body", "rows", 3)`` -> ``rows[3]``,
    ``("query", "top_k")`` -> ``top_k``."""
    part = ""
    for p in loc[1:]:
        part += f"[{p}]" if isinstance(p, int) else f".{p}" if part else str(p)
    return part or None


def _part_name(index: int, upload: UploadFile) -> str:
    return f"files[{index}] ({upload.filename})" if upload.filename else f"files[{index}]"


def _infer(
    runner: Runner, reader: Reader, parts: list[tuple[str, bytes]], k: int
) -> list[dict[str, Any]]:
    """Decode every part (a bad one is a 400 naming it), then one batch through the model."""
    decoded = []
    for name, data in parts:
        try:
            decoded.append(reader.decode(data, name))
        except InputTooLarge as exc:
            raise RequestError(413, str(exc), name) from None
        except UserError as exc:
            raise RequestError(400, str(exc), name) from None
        except Exception as exc:  # a decoder failing in a way it does not name: still the part's
            log.warning("%s: unexpected decode failure", name, exc_info=True)
            raise RequestError(400, f"{name}: cannot decode ({exc!r})", name) from None
    batch = {key: np.stack([d[key] for d in decoded]) for key in decoded[0]}
    tops = top_k_rows(runner.run(batch), runner.classes, k)
    return [
        {"part": name, "top": [{"class": c, "probability": six_decimals(p)} for c, p in top]}
        for (name, _), top in zip(parts, tops, strict=True)
    ]


def _metadata(
    runner: Runner, version: str, limits: Limits, service: JsonService | None
) -> dict[str, Any]:
    folder = runner.path.parent
    meta = runner.metadata
    return {
        "kind": meta["kind"],
        "classes": runner.classes,
        "inputs": runner.inputs,
        "preprocessing": json.loads(meta["preprocessing"]) if "preprocessing" in meta else None,
        **(service.describe() if service else {}),
        "format": runner.format,
        # the formats exported beside the served file: what else could serve the same model
        "formats": sorted(f for f, name in paths.EXPORT_FILES.items() if (folder / name).exists()),
        "model_file": runner.path.name,
        "model_version": version,
        "limits": limits.read_by(meta["kind"], classifies=bool(runner.classes)),
    }


class _BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` is a 413 before the form parser stores it,
    by Content-Length when sent, else by counting while it streams in."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._too_large(scope, receive, send)
            return
        received, exceeded, answered = 0, False, False

        async def counted() -> dict:
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                exceeded = True
                raise _TooLarge
            return message

        async def guarded(message: dict) -> None:
            # FastAPI turns any error while parsing the form into its own 400: once the body
            # was cut off, replace whatever the app answers with the 413
            nonlocal answered
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await self._too_large(scope, receive, send)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if not answered:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: dict, receive: Any, send: Any) -> None:
        response = JSONResponse(
            {"error": f"request body over {self.max_bytes:,} bytes", "part": None},
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def serve(model: Path, host: str, port: int, limits: Limits, threads: int = 0) -> None:
    """Load ``model`` and serve it until SIGTERM/SIGINT (in-flight requests finish first)."""
    import uvicorn

    app = create_app(load_runner(model, threads), limits)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
