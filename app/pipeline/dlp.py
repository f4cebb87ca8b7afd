"""DLP in the run of one request: the client's bodies are scanned once, before any translation;
each step applies its request check before the cache lookup (a BLOCK ends the request with 2029,
logged), a body response is checked before it is cached or returned (2030), and a stream goes
through the hold-back of `dlp_stream.py`. A compat step's response is checked as the client gets
it, translated to OpenAI format (dlp.md §3). Matched text is redacted in every stored body.

Gateways without DLP never reach this module (`RequestDlp.of` answers None).
"""

from __future__ import annotations

import orjson

from app.core.errors import ErrorContext, RequestBlockedByDlp, ResponseBlockedByDlp
from app.dlp.config import CompiledDlp
from app.dlp.detector import Match
from app.dlp.extract import extract_body
from app.dlp.findings import Findings
from app.logs.record import LogRecord
from app.pipeline.recording import StepLog
from app.pipeline.types import Step
from app.providers.compat.base import StreamTranslator, Translation
from app.providers.compat.openai_like import PassThroughStream


class RequestDlp:
    __slots__ = ("_request_matches", "config", "findings", "translations")

    def __init__(self, config: CompiledDlp, steps: list[Step], content_type: str | None) -> None:
        self.config = config
        self.findings = Findings(config)
        # Each step's compat translation (None: a native step), set once the steps are translated:
        # the response check scans what the client gets.
        self.translations: list[Translation | None] = [None] * len(steps)
        detector = config.request
        self._request_matches: list[tuple[list[Match], dict[str, str]]] = []
        for step in steps:  # before compat translation: what the client sent
            extracted = extract_body(step.body, _content_type(step, content_type), response=False)
            matches = detector.scan(extracted.text) if detector and extracted else []
            secrets = {extracted.text[m.start : m.end]: m.entry_id for m in matches} if extracted else {}
            self._request_matches.append((matches, secrets))

    @classmethod
    def of(cls, config: CompiledDlp | None, steps: list[Step], content_type: str | None) -> RequestDlp | None:
        return cls(config, steps, content_type) if config is not None else None

    @property
    def checks_responses(self) -> bool:
        return self.config.response is not None

    def stream_translator(self, index: int) -> StreamTranslator | None:
        """What turns step `index`'s stream into the client's, when it is not relayed as it is."""
        translation = self.translations[index] if index < len(self.translations) else None
        translator = translation.stream() if translation is not None else None
        return None if translator is None or isinstance(translator, PassThroughStream) else translator

    def route_blocks_request(self) -> bool:
        """A dynamic route's request, scanned once before the walk (dlp.md §4): record its findings
        and say whether a policy blocks it."""
        matches, _ = self._request_matches[0]
        return bool(matches) and self.findings.add("REQUEST", matches)

    def route_call(self, index: int, translation: Translation) -> None:
        """A dynamic route's model call `index`: the client's one request stands for each call (its
        row's stored request is redacted alike), and the call's response is checked as translated
        back for the client."""
        while len(self._request_matches) <= index:
            self._request_matches.append(self._request_matches[0])
            self.translations.append(None)
        self.translations[index] = translation

    def check_request(self, index: int, log: StepLog, context: ErrorContext) -> None:
        """Step `index`, before its cache lookup: record findings, redact the stored request, and
        raise 2029 (logged as a 400) when a policy blocks it."""
        matches, secrets = self._request_matches[index]
        if not matches:
            return
        record = log.record
        record.request_size_override = len(record.request_body)
        record.request_body = redact_stored(record.request_body, record.request_content_type, secrets, False)
        blocked = self.findings.add("REQUEST", matches)
        self.record_findings(record)
        if blocked:
            error = RequestBlockedByDlp(self.findings.header(), context=context)
            log.finish(error.status, False, f"{error.code}: {error.message}")
            raise error

    def check_response(
        self, status: int, body: bytes, content_type: str | None, log: StepLog, index: int,
        context: ErrorContext,
    ) -> bytes | None:  # fmt: skip
        """A whole 2xx response body, before it is cached or returned: 2030 when a policy blocks it,
        else the body as the log stores it when that is redacted (the cache keeps it for hits). A
        compat step's body is scanned as the client gets it (in OpenAI format); the log keeps the
        provider's body, redacted."""
        detector = self.config.response
        if detector is None:
            return None
        translation = self.translations[index] if index < len(self.translations) else None
        scanned, kind = (translation.response(status, body), _JSON) if translation else (body, content_type)
        extracted = extract_body(scanned, kind, response=True)
        if extracted is None:
            return None
        matches = detector.scan(extracted.text)
        if not matches:
            return None
        record = log.record
        secrets = {extracted.text[m.start : m.end]: m.entry_id for m in matches}
        redacted = redact_stored(body, content_type, secrets, True)
        record.response_head, record.response_size = b"", 0
        record.add_response_bytes(redacted)
        record.response_size, record.full_body = len(body), redacted
        blocked = self.findings.add("RESPONSE", matches)
        self.record_findings(record)
        if blocked:
            error = ResponseBlockedByDlp(self.findings.header(), context=context)
            log.finish(error.status, False, f"{error.code}: {error.message}")
            raise error
        return redacted

    def record_findings(self, record: LogRecord) -> None:
        record.dlp = self.findings.log_json()
        record.dlp_action = self.findings.action

    def header(self) -> tuple[str, str] | None:
        value = self.findings.header()
        return ("cf-aig-dlp", value) if value is not None else None

    def label(self, headers: list[tuple[str, str]]) -> None:
        """`cf-aig-dlp` on an answer when anything was found (the findings known by now)."""
        if (finding := self.header()) is not None:
            headers.append(finding)


def redact_bytes(data: bytes, secrets: dict[str, str]) -> tuple[bytes, list[str]]:
    """Every occurrence of each matched text, raw or JSON-escaped, replaced by its marker: the
    stored body may be the client's or its translation, which carries the same strings. Also the
    entries of the texts found nowhere in `data`."""
    unlocated: list[str] = []
    for secret, entry in sorted(secrets.items(), key=lambda item: -len(item[0])):
        marker = f"[REDACTED:{entry}]".encode()
        raw = secret.encode()
        escaped = orjson.dumps(secret)[1:-1]
        if raw not in data and escaped not in data:
            unlocated.append(entry)
        data = data.replace(raw, marker)
        if escaped != raw:
            data = data.replace(escaped, marker)
    return data, unlocated


def redact_stored(data: bytes, content_type: str | None, secrets: dict[str, str], response: bool) -> bytes:
    """`data` (a body as the log stores it) with every matched text redacted. A text found in the
    translated body but nowhere in this one (the translation joined two of its fields, as two text
    blocks of one Anthropic answer become one message) leaves no place to point at: then every
    text field of this body is redacted whole, so no piece of it is stored."""
    redacted, unlocated = redact_bytes(data, secrets)
    if not unlocated:
        return redacted
    extracted = extract_body(redacted, content_type, response=response)
    if extracted is None or extracted.document is None:
        return f"[REDACTED:{unlocated[0]}]".encode()
    return extracted.redacted([Match(unlocated[0], 0, len(extracted.text))])


def _content_type(step: Step, fallback: str | None) -> str | None:
    return next((v for n, v in step.headers if n.lower() == "content-type"), fallback)


_JSON = "application/json"
