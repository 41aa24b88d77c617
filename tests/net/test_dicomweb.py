"""DICOMweb client against httpx's MockTransport (the real Orthanc is in tests/integration)."""

from __future__ import annotations

import httpx
import pytest

from radlens.errors import DicomWebError
from radlens.net.dicomweb import DicomWebClient, parse_multipart, redact_url

SECRET = "pw-never-in-logs"


def test_redact_url_drops_credentials_and_query() -> None:
    assert redact_url(f"https://bob:{SECRET}@pacs.example:8443/dicom-web?t=1") == (
        "https://pacs.example:8443/dicom-web"
    )


def test_parse_multipart_keeps_binary_parts_byte_exact() -> None:
    first, second = b"DICM\r\n\x00\xff--x", b"\r\n\r\nsecond"
    body = (
        b"preamble\r\n--b1\r\nContent-Type: application/dicom\r\n\r\n"
        + first
        + b"\r\n--b1\r\nContent-Type: application/dicom\r\n\r\n"
        + second
        + b"\r\n--b1--\r\n"
    )
    parts = parse_multipart('multipart/related; type="application/dicom"; boundary="b1"', body)
    assert parts == [first, second]


def test_parse_multipart_refuses_other_media_types() -> None:
    with pytest.raises(DicomWebError):
        parse_multipart("application/json", b"{}")


def test_store_sends_multipart_with_basic_auth_and_search_reads_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            parts = parse_multipart(request.headers["content-type"], request.content)
            assert parts == [b"one", b"two"]
            return httpx.Response(200, json={"00081199": {"vr": "SQ"}})
        return httpx.Response(200, json=[{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}])

    client = DicomWebClient(
        "http://pacs/dicom-web/", "bob", SECRET, transport=httpx.MockTransport(handler)
    )
    assert client.store_instances([b"one", b"two"], "1.2.3") == {"00081199": {"vr": "SQ"}}
    assert client.search_studies()[0]["0020000D"]["Value"] == ["1.2.3"]
    assert seen[0].url.path == "/dicom-web/studies/1.2.3"
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert SECRET not in repr(client)
    client.close()


def test_http_error_message_names_server_without_credentials() -> None:
    client = DicomWebClient(
        f"http://bob:{SECRET}@pacs/dicom-web",
        transport=httpx.MockTransport(lambda request: httpx.Response(401)),
    )
    with pytest.raises(DicomWebError) as caught:
        client.search_studies()
    assert SECRET not in str(caught.value) and "HTTP 401" in str(caught.value)
    client.close()
