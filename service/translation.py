"""The service's requests, independent of gRPC: validate, batch, build the response."""

from __future__ import annotations

from dataclasses import replace

from service.api.translation.v1 import translation_pb2 as pb
from service.backend import ModelSet
from service.batcher import BatchKey, Item
from service.config import Settings
from service.convert import BLANK, to_response
from service.errors import ResponseTooLarge
from service.scheduling import SentenceScheduler
from service.text.markup_translation import translated_document
from service.types import Translation
from service.validation import Job, Markup, is_blank, validate

STREAM_STATUS_BYTES = pb.TranslateResponse(status=pb.Status()).ByteSize()  # what TranslateStream adds to a response


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
        job = validate(request, self.models, self._settings)
        if job.markup is None:
            translations = await self._translate_texts(job, deadline)
        else:
            translations = await self._translate_markup(job.markup, job, deadline)
        response = to_response(job, translations, request_id)
        response.id = request.id
        size, limit = response.ByteSize() + STREAM_STATUS_BYTES, self._settings.max_message_bytes
        if size > limit:
            raise ResponseTooLarge(
                f"the response would be {size} bytes; this server sends at most {limit}:"
                " ask for fewer texts, fewer hypotheses or no attention"
            )
        return response

    async def _translate_texts(self, job: Job, deadline: float | None) -> list[Translation]:
        """Each plain text translated as one sentence; blank ones without the model."""
        todo = [i for i, text in enumerate(job.texts) if not is_blank(text)]
        items = [Item(job.texts[i], job.tokens[i]) for i in todo]
        done = await self._batcher.submit(items, BatchKey(job.model, job.options), deadline)
        translations = [BLANK] * len(job.texts)
        for i, translation in zip(todo, done, strict=True):
            translations[i] = translation
        return translations

    async def _translate_markup(self, markup: list[Markup], job: Job, deadline: float | None) -> list[Translation]:
        """Each HTML text's blocks translated as sentences (with the attention that places their tags), then
        put back into the page."""
        items = [Item(b.source, n) for m in markup for b, n in zip(m.document.blocks, m.tokens, strict=True)]
        key = BatchKey(job.model, replace(job.options, return_attention=True))
        done = iter(await self._batcher.submit(items, key, deadline))
        return [translated_document(m.document, [next(done) for _ in m.document.blocks]) for m in markup]

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
