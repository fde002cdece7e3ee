"""The Starlette application: the API, the OpenAPI document and the web page."""

from __future__ import annotations

from pathlib import Path

import grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from service.errors import ErrorStatus
from service.http.errors import error_response
from service.http.openapi import openapi_document
from service.http.routes import HttpApi, internal_error, with_request_id
from service.telemetry.logs import new_request_id

STATIC = Path(__file__).with_name("static")
API_VERSION = "v1"
# The page loads and calls only this server: the browser refuses anything else.
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"


def build_app(api: HttpApi) -> Starlette:
    """Routes of `api`, /openapi.json, the page at / and its files under /static."""
    document = openapi_document(API_VERSION)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"content-security-policy": PAGE_POLICY})

    routes = [
        Route("/v1/translate", api.translate, methods=["POST"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/", page, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {HTTPException: _http_exception, Exception: _internal}
    return Starlette(routes=routes, exception_handlers=handlers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such path, wrong method) as JSON errors."""
    assert isinstance(exc, HTTPException)
    code = grpc.StatusCode.NOT_FOUND if exc.status_code == 404 else grpc.StatusCode.UNIMPLEMENTED
    request_id = new_request_id()
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return with_request_id(error_response(ErrorStatus(code, message), request_id, exc.status_code), request_id)


async def _internal(request: Request, exc: Exception) -> Response:
    return internal_error(exc)
