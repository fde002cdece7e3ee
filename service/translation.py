"""The service's requests, independent of gRPC: validate, batch, build the response."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from service.api.translation.v1 import translation_pb2 as pb
from service.config import Settings
from service.convert import markup_response, to_response
from service.decoding.backend import ModelSet
from service.errors import QueueFull, ResponseTooLarge, ServiceError
from service.scheduling import SentenceScheduler
from service.scheduling.batcher import BatchKey, Item
from service.text.markup_translation import translated_page
from service.types import Translation
from service.validation import Job, Markup, resolve_model, validate

STREAM_STATUS_BYTES = pb.TranslateResponse(status=pb.Status()).ByteSize()  # what TranslateStream adds to a response
OFF_LOOP_CHARS = 10_000  # a request this long is split and put together on a worker thread, not the event loop
T = TypeVar("T")


class TranslationService:
    """Answers Translate and ListModels requests with the served models and the batcher."""

    def __init__(self, models: ModelSet, batcher: SentenceScheduler, settings: Settings) -> None:
        self.models = models
        self._batcher = batcher
        self._settings = settings

    async def translate(
        self, request: pb.TranslateRequest, request_id: str, deadline: float | None
    ) -> pb.TranslateResponse:
        """Translates the request's texts; raises a ServiceError (or the model's error) on failure.

        `deadline` is a time.monotonic() instant or None.
        """
        long = sum(map(len, request.texts)) > OFF_LOOP_CHARS
        job = await _run(long, validate, request, self.models, self._settings)
        self._admit_blank(job)
        if job.markup is None:
            items = [Item(s.source, s.tokens) for document in job.documents for s in document.sentences]
            done = iter(await self._batcher.submit(items, BatchKey(job.model, job.options), deadline))
            per_text = [[next(done) for _ in document.sentences] for document in job.documents]
            response = await _run(long, to_response, job, per_text, request_id)
        else:
            translations = await self._translate_markup(job.markup, job, deadline)
            response = markup_response(job, translations, request_id)
        response.id = request.id
        size, limit = response.ByteSize() + STREAM_STATUS_BYTES, self._settings.max_message_bytes
        if size > limit:
            raise ResponseTooLarge(
                f"the response would be {size} bytes; this server sends at most {limit}:"
                " ask for fewer texts, fewer hypotheses or no attention"
            )
        return response

    def _admit_blank(self, job: Job) -> None:
        """Texts with nothing for the model (blank ones) never wait in its queue, yet each counts as a sentence
        against its room: when the queue is full, a request of them is refused like any other."""
        sentences, blank = _model_work(job)
        waiting, limit = self._batcher.depth(job.model), self._settings.max_queue_size
        if blank and waiting + sentences + blank > limit:
            raise QueueFull(
                f"model {job.model} has {waiting} sentences waiting; {sentences + blank} more ({blank} blank texts,"
                f" counted as one sentence each) would exceed its queue of {limit}; retry later"
            )

    async def _translate_markup(self, markup: list[Markup], job: Job, deadline: float | None) -> list[Translation]:
        """Each HTML text's blocks translated as sentences (with the attention that places their tags), then
        put back into the page."""
        items = [Item(b.source, n) for m in markup for b, n in zip(m.page.blocks, m.tokens, strict=True)]
        key = BatchKey(job.model, replace(job.options, return_attention=True))
        done = iter(await self._batcher.submit(items, key, deadline))
        return [translated_page(m.page, [next(done) for _ in m.page.blocks]) for m in markup]

    def model_label(self, request: pb.TranslateRequest) -> str:
        """The metrics label of the model a request means, "" if the server holds none such."""
        try:
            return resolve_model(request, self.models)
        except ServiceError:
            return ""

    def list_models(self) -> pb.ListModelsResponse:
        """The served models, the default first."""
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(
                    name=name,
                    version=backend.manifest.version,
                    source_language=backend.manifest.source_language,
                    target_language=backend.manifest.target_language,
                    provider=backend.provider,
                )
                for name, backend in self.models.items()
            ]
        )


def _model_work(job: Job) -> tuple[int, int]:
    """The job's sentences (HTML blocks) for the model, and its texts with none (blank ones)."""
    if job.markup is None:
        per_text = [len(document.sentences) for document in job.documents]
    else:
        per_text = [len(markup.page.blocks) for markup in job.markup]
    return sum(per_text), per_text.count(0)


async def _run(off_loop: bool, function: Callable[..., T], *args: Any) -> T:
    """`function(*args)`, on a worker thread if `off_loop` (a long document takes tens of milliseconds)."""
    return await asyncio.to_thread(function, *args) if off_loop else function(*args)
