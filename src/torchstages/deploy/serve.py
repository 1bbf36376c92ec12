"""``torchstages serve``: an HTTP service over an exported model (FastAPI + uvicorn).

Generic over data kinds: each uploaded part goes through the model's reader
(``deploy/readers.py``) and the batch through the runner (``deploy/runtime.py``). Decoding and
inference run in worker threads, so the event loop keeps answering ``/health`` while a large
batch computes; uvicorn finishes in-flight requests on SIGTERM before it exits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from torchstages import paths
from torchstages.deploy.predict import top_k
from torchstages.deploy.readers import DEFAULT_MAX_PIXELS, InputTooLarge, Reader, reader_for
from torchstages.deploy.runtime import Runner, load_runner, softmax
from torchstages.errors import UserError

__all__ = ["Limits", "create_app", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; beyond them the answer is a 4xx, never a crash."""

    max_request_bytes: int = 32 << 20
    max_images: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image, checked on the header (decompression bombs)
    top_k: int = 5  # default classes per image; a request may ask for fewer or more


class RequestError(Exception):
    """A bad request: answered as JSON ``{"error": ..., "part": ...}`` with ``status``."""

    def __init__(self, status: int, message: str, part: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.part = status, message, part


def create_app(runner: Runner, limits: Limits = Limits()) -> FastAPI:
    """The service for one loaded model."""
    reader = reader_for(runner.metadata, limits.max_pixels)
    version = runner.version()
    metadata = _metadata(runner, version, limits)
    app = FastAPI(
        title="torchstages model",
        version=version[:12],
        description=f"{runner.format} model `{runner.path.name}`, classes: "
        f"{', '.join(runner.classes)}. Send inputs as multipart parts named `files`.",
    )
    app.add_middleware(_BodyLimit, max_bytes=limits.max_request_bytes)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "part": exc.part}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own errors (a malformed multipart body, an unknown path) in the same shape
        return JSONResponse({"error": exc.detail, "part": None}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse({"error": f"{where}: {first['msg']}", "part": None}, status_code=422)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Answers while the model computes: inference runs off the event loop."""
        return {"status": "ok"}

    @app.get("/metadata")
    async def get_metadata() -> dict[str, Any]:
        """Classes, inputs and preprocessing, formats, limits; ``model_version`` is the sha256
        of the served file."""
        return metadata

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

    return app


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
    probs = softmax(runner.run(batch))
    return [
        {
            "part": name,
            "top": [
                {"class": c, "probability": round(p, 6)} for c, p in top_k(row, runner.classes, k)
            ],
        }
        for (name, _), row in zip(parts, probs, strict=True)
    ]


def _metadata(runner: Runner, version: str, limits: Limits) -> dict[str, Any]:
    folder = runner.path.parent
    meta = runner.metadata
    return {
        "kind": meta["kind"],
        "classes": runner.classes,
        "inputs": runner.inputs,
        "preprocessing": json.loads(meta["preprocessing"]) if "preprocessing" in meta else None,
        "format": runner.format,
        # the formats exported beside the served file: what else could serve the same model
        "formats": sorted(f for f, name in paths.EXPORT_FILES.items() if (folder / name).exists()),
        "model_file": runner.path.name,
        "model_version": version,
        "limits": asdict(limits),
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
