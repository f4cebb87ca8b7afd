"""DLP on multipart request bodies (dlp.md §3): text parts are scanned, binary parts skipped, and a
body that does not parse as multipart is scanned whole as raw text, never an error of its own.

Through a running gateway with httpx's multipart encoder (what the openai SDK sends for an audio
transcription), and the part rules on their own with positive and negative samples."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.dlp.extract import extract_body
from app.dlp.multipart import MAX_PARTS, multipart_texts
from tests.dlp.test_dlp_gateway import SECRET
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, Api, api_client, running_gateway

BLOCK_REQUESTS = {
    "enabled": True,
    "policies": [{"id": "no-keys", "enabled": True, "action": "BLOCK", "check": ["REQUEST"],
                  "profiles": ["api_keys", "email"]}],
}  # fmt: skip
AUDIO = b"ID3\x04\x00\xff\xfb\x90\x64" + bytes(range(256)) * 4


def _encoded(
    files: dict[str, tuple[str, bytes, str | None]], data: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart/form-data body as httpx (and so the openai SDK) writes it, and its content type."""
    request = httpx.Request("POST", "http://gateway.invalid/", files=files, data=data or {})
    return request.read(), request.headers["content-type"]


# ---- the part rules -------------------------------------------------------------------------------


def test_form_fields_and_text_parts_are_scanned_binary_parts_are_not() -> None:
    body, content_type = _encoded(
        {
            "file": ("speech.mp3", AUDIO + b"sk-in-audio", "audio/mpeg"),
            "notes": ("notes.txt", b"a text file", "text/plain"),
            "meta": ("meta.json", b'{"k": "json part"}', "application/json"),
            "blob": ("blob.bin", b"octets", "application/octet-stream"),
        },
        {"model": "whisper-1", "prompt": "a prompt"},
    )
    assert multipart_texts(body, content_type) == [
        "whisper-1",
        "a prompt",
        "a text file",
        '{"k": "json part"}',
    ]


def test_an_untyped_file_is_text_only_when_it_is_utf8() -> None:
    body, content_type = _encoded({"a": ("a.txt", "héllo".encode(), None), "b": ("b.raw", AUDIO, None)})
    assert multipart_texts(body, content_type) == ["héllo"]


@pytest.mark.parametrize(
    "cut",
    [
        lambda body, kind: (body[:-20], kind),  # cut short: no closing boundary
        lambda body, kind: (body, "multipart/form-data"),  # no boundary named
        lambda body, kind: (body, "multipart/form-data; boundary=another"),  # not its boundary
        lambda body, kind: (b"plain words, no parts", kind),
        lambda body, kind: (body, "multipart/form-data; boundary=" + "x" * 100),  # over the boundary limit
    ],
    ids=["truncated", "no-boundary", "wrong-boundary", "no-parts", "long-boundary"],
)
def test_what_is_not_a_whole_multipart_body_is_none_and_scanned_as_raw_text(cut: object) -> None:
    body, content_type = _encoded({"file": ("a.mp3", AUDIO, "audio/mpeg")}, {"prompt": f"key {SECRET}"})
    broken, kind = cut(body, content_type)  # type: ignore[operator]
    assert multipart_texts(broken, kind) is None
    extracted = extract_body(broken, kind, response=False)
    assert extracted is not None and extracted.text == broken.decode("utf-8", "replace")


def test_more_parts_than_the_bound_is_none() -> None:
    audio = {"file": ("a.mp3", AUDIO, "audio/mpeg")}
    fields = {f"f{i}": "x" for i in range(MAX_PARTS)}
    body, content_type = _encoded(audio, fields)  # MAX_PARTS + 1 parts
    assert multipart_texts(body, content_type) is None
    body, content_type = _encoded(audio, dict(list(fields.items())[1:]))
    assert multipart_texts(body, content_type) == ["x"] * (MAX_PARTS - 1)


def test_a_multipart_body_without_text_parts_has_nothing_to_scan() -> None:
    body, content_type = _encoded({"file": ("a.mp3", AUDIO, "audio/mpeg")})
    assert extract_body(body, content_type, response=False) is None


# ---- through the gateway: an audio transcription ---------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Api]:
    with (
        running_gateway(tmp_path_factory.mktemp("dlp-multipart"), fake_upstream.url) as server,
        api_client(server) as client,
    ):
        yield client


def _transcribe(api: Api, gateway: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {"Authorization": "Bearer sk-test", "content-type": content_type}
    return api.http.post(f"/v1/{ACCT}/{gateway}/openai/audio/transcriptions", content=body, headers=headers)


def test_a_secret_in_the_prompt_field_blocks_the_transcription(api: Api, upstream: FakeUpstream) -> None:
    gateway = api.new_gateway(dlp=BLOCK_REQUESTS)
    body, content_type = _encoded(
        {"file": ("speech.mp3", AUDIO, "audio/mpeg")}, {"model": "whisper-1", "prompt": f"use {SECRET}"}
    )
    response = _transcribe(api, gateway, body, content_type)
    assert response.status_code == 400, response.text
    assert response.json()["error"][0]["code"] == 2029
    header = json.loads(response.headers["cf-aig-dlp"])
    assert header["findings"][0]["profile"]["entry_ids"] == ["api_keys.openai"]
    assert upstream.count("audio/transcriptions") == 0
    row = api.db().wait_gateway(gateway)[0]
    assert SECRET.encode() not in row["request_body"] and b"[REDACTED:api_keys.openai]" in row["request_body"]
    assert AUDIO[:32] in row["request_body"]  # the rest of the body as it came


def test_the_same_text_inside_the_audio_file_is_not_scanned(api: Api, upstream: FakeUpstream) -> None:
    gateway = api.new_gateway(dlp=BLOCK_REQUESTS)
    body, content_type = _encoded(
        {"file": ("speech.mp3", AUDIO + SECRET.encode(), "audio/mpeg")},
        {"model": "whisper-1", "prompt": "hi"},
    )
    response = _transcribe(api, gateway, body, content_type)
    assert response.status_code == 200, response.text
    assert "cf-aig-dlp" not in response.headers
    assert upstream.count("audio/transcriptions") == 1


def test_a_malformed_multipart_body_is_scanned_as_raw_text(api: Api, upstream: FakeUpstream) -> None:
    gateway = api.new_gateway(dlp=BLOCK_REQUESTS)
    body, content_type = _encoded(
        {"file": ("a.mp3", AUDIO, "audio/mpeg")}, {"prompt": "mail bob@example.com"}
    )
    response = _transcribe(api, gateway, body[:-40], content_type)  # cut before its last boundary
    assert response.status_code == 400, response.text
    assert response.json()["error"][0]["code"] == 2029
    assert json.loads(response.headers["cf-aig-dlp"])["findings"][0]["profile"]["entry_ids"] == [
        "email.address"
    ]
    clean, _ = _encoded({"file": ("a.mp3", AUDIO, "audio/mpeg")}, {"prompt": "nothing to see"})
    relayed = _transcribe(api, gateway, clean[:-40], content_type)
    assert relayed.status_code == 200 and "cf-aig-dlp" not in relayed.headers  # relayed to the provider
