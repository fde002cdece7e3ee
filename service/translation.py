"""The service's requests, independent of gRPC: validate, batch, build the response."""

from __future__ import annotations

from service.api.translation.v1 import translation_pb2 as pb
from service.backend import ModelSet
from service.batcher import BatchKey, Item
from service.config import Settings
from service.convert import BLANK, to_response
from service.errors import ResponseTooLarge
from service.scheduling import SentenceScheduler
from service.validation import is_blank, validate

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
        todo = [i for i, text in enumerate(job.texts) if not is_blank(text)]
        items = [Item(job.texts[i], job.tokens[i]) for i in todo]
        done = await self._batcher.submit(items, BatchKey(job.model, job.options), deadline)
        translations = [BLANK] * len(job.texts)
        for i, translation in zip(todo, done, strict=True):
            translations[i] = translation
        response = to_response(job, translations, request_id)
        response.id = request.id
        size, limit = response.ByteSize() + STREAM_STATUS_BYTES, self._settings.max_message_bytes
        if size > limit:
            raise ResponseTooLarge(
                f"the response would be {size} bytes; this server sends at most {limit}:"
                " ask for fewer texts, fewer hypotheses or no attention"
            )
        return response

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
