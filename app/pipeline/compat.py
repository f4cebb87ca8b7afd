"""Apply a compat translation to a pipeline result: native body or stream → OpenAI format. Done
on the result, so cache hits (stored native) are translated exactly like fresh answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.core.ids import new_log_id
from app.pipeline.types import ComposedStream, GatewayResult, ResultMeta, ResultStream
from app.providers.compat.base import CompatRequestError, StreamTranslator, Translation, openai_error
from app.providers.compat.openai_like import PassThroughStream

_JSON = ("content-type", "application/json")


class TranslatedStream(ComposedStream):
    """The native stream translated to OpenAI `chat.completion.chunk` events (whole events per
    chunk: the translators emit only complete ones)."""

    def __init__(self, inner: ResultStream, translator: StreamTranslator) -> None:
        self._inner = inner
        self._translator = translator

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._translate()

    async def _translate(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            out = self._translator.feed(chunk)
            if out:
                yield out
        tail = self._translator.close()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self._inner.aclose()


def _without(headers: list[tuple[str, str]], names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in names]


def to_openai_format(translation: Translation, result: GatewayResult) -> GatewayResult:
    if result.stream is not None:
        if isinstance(result.stream, ComposedStream):
            return result  # translated already, under the DLP hold-back (dlp_stream.py)
        translator = translation.stream()
        # A provider that already speaks OpenAI: its stream is relayed as it is, not composed.
        if not isinstance(translator, PassThroughStream):
            result.stream = TranslatedStream(result.stream, translator)
        return result
    result.body = translation.response(result.status, result.body or b"")
    result.headers = [*_without(result.headers, ("content-type",)), _JSON]
    result.meta.content_type = "application/json"
    return result


def compat_error_result(error: CompatRequestError, event_id: str | None) -> GatewayResult:
    log_id = new_log_id()
    meta = ResultMeta(log_id, event_id or log_id, 0, "MISS", "application/json", error.status)
    return GatewayResult(error.status, [_JSON], meta, body=openai_error(error.status, error.message))
