"""radlens.server.stow: STOW-RS request limits (body size, instance size, pixel size)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from radlens.config import Settings
from radlens.domain.findings import StudyResult
from radlens.domain.imaging import Study
from radlens.errors import TooLargeError
from radlens.server.app import create_app
from radlens.server.stow import read_body
from serve_helpers import log_in, make_instance, result_with_finding

CAP = 200_000  # bytes of one request body; CT_small is ~39 KB
BOUNDARY = "radlens-stow-limits"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


def multipart(*parts: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    return b"".join(head + p + b"\r\n" for p in parts) + f"--{BOUNDARY}--\r\n".encode()


def fake_analyze(study: Study) -> StudyResult:
    return result_with_finding(study, "pneumonia", 0.1)


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        home=tmp_path,
        dicom_enabled=False,
        workers=0,
        max_upload_bytes=CAP,
        max_instance_bytes=60_000,
        max_pixel_bytes=40_000,
    )
    with TestClient(create_app(settings, analyze=fake_analyze)) as client:
        log_in(client)
        yield client


def _post(client: TestClient, body: bytes | Iterator[bytes]) -> Response:
    return client.post("/dicomweb/studies", content=body, headers={"content-type": CONTENT_TYPE})


def test_a_body_declared_over_the_cap_is_413_with_a_json_error(small_client: TestClient) -> None:
    body = multipart(*(make_instance("1.2.7", f"1.2.7.{i}") for i in range(6)))
    assert len(body) > CAP
    response = _post(small_client, body)
    assert response.status_code == 413
    assert response.json() == {
        "error": "too_large",
        "detail": f"request body of {len(body)} bytes, over the cap of {CAP}",
    }


def test_a_chunked_body_streaming_past_the_cap_is_413(small_client: TestClient) -> None:
    """No Content-Length: the body is counted as it arrives and refused past the cap."""
    part = make_instance("1.2.7", "1.2.7.1")

    def chunks() -> Iterator[bytes]:
        yield b"--x\r\nContent-Type: application/dicom\r\n\r\n"
        for _ in range(10):
            yield part

    response = _post(small_client, chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert "past the cap" in response.json()["detail"]


def test_a_body_under_the_cap_is_stored(small_client: TestClient) -> None:
    response = _post(small_client, multipart(make_instance("1.2.7", "1.2.7.1")))
    assert response.status_code == 200


def test_an_instance_over_the_instance_cap_fails_with_out_of_resources(
    small_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance("1.2.8", "1.2.8.1")))
    ds.add_new(0x00091010, "OB", bytes(30_000))  # private padding: ~69 KB in all
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with caplog.at_level(logging.WARNING, logger="radlens.server.stow"):
        response = _post(small_client, multipart(buffer.getvalue()))
    assert response.status_code == 409
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xA700]
    assert "over the cap of 60000 for one instance" in caplog.text


def test_an_instance_whose_pixels_decode_past_the_pixel_cap_is_refused(
    small_client: TestClient,
) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_instance("1.2.9", "1.2.9.1")))
    ds.NumberOfFrames = 10_000  # 128 x 128 x 2 bytes x 10,000 frames: 328 MB decoded
    buffer = io.BytesIO()
    ds.save_as(buffer)
    response = _post(small_client, multipart(buffer.getvalue()))
    assert response.status_code == 409
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xC000]


async def _stream(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def test_read_body_stops_at_the_cap_and_trusts_no_declared_length() -> None:
    assert asyncio.run(read_body(_stream(b"ab", b"cd"), None, 4)) == b"abcd"
    with pytest.raises(TooLargeError, match="past the cap of 3 bytes"):
        asyncio.run(read_body(_stream(b"ab", b"cd"), "2", 3))  # lies about its length
    with pytest.raises(TooLargeError, match="request body of 10 bytes"):
        asyncio.run(read_body(_stream(), "10", 3))
