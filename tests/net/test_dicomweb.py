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


def test_series_and_instance_routes_carry_the_uids_and_ask_for_the_right_media_types() -> None:
    seen: list[tuple[str, str, str]] = []
    part = b"DICM-bytes"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, str(request.url.params), request.headers["accept"]))
        if request.headers["accept"].startswith("multipart/"):
            body = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n--b--\r\n"
            return httpx.Response(
                200, content=body, headers={"content-type": "multipart/related; boundary=b"}
            )
        return httpx.Response(200, json=[{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}}, 7])

    client = DicomWebClient("http://pacs/dicom-web", transport=httpx.MockTransport(handler))
    assert client.search_series("1.2.3", {"includefield": "00080070"}) == [
        {"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}}  # the stray non-object is dropped
    ]
    assert len(client.search_instances("1.2.3", "1.2.3.4")) == 1
    assert client.retrieve_series("1.2.3", "1.2.3.4") == [part]
    assert client.retrieve_instance("1.2.3", "1.2.3.4", "1.2.3.4.5") == [part]
    client.close()
    paths = [path for path, _, _ in seen]
    assert paths == [
        "/dicom-web/studies/1.2.3/series",
        "/dicom-web/studies/1.2.3/series/1.2.3.4/instances",
        "/dicom-web/studies/1.2.3/series/1.2.3.4",
        "/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.5",
    ]
    assert seen[0][1] == "includefield=00080070"
    assert [accept.split(";")[0] for _, _, accept in seen] == [
        "application/dicom+json",
        "application/dicom+json",
        "multipart/related",
        "multipart/related",
    ]


@pytest.mark.parametrize("bad_uid", ["../../tools/reset", "1.2.3/../4", "", "1." + "2" * 70])
def test_a_uid_that_is_not_a_dicom_uid_never_becomes_a_route(bad_uid: str) -> None:
    seen: list[httpx.Request] = []
    client = DicomWebClient(
        "http://pacs/dicom-web",
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)),
    )
    with pytest.raises(DicomWebError, match="not a DICOM UID"):
        client.retrieve_series("1.2.3", bad_uid)
    assert seen == []
    client.close()


def test_error_messages_name_the_route_without_its_uids() -> None:
    client = DicomWebClient(
        "http://pacs/dicom-web", transport=httpx.MockTransport(lambda r: httpx.Response(404))
    )
    with pytest.raises(DicomWebError) as caught:
        client.retrieve_instance("1.2.840.99", "1.2.840.99.1", "1.2.840.99.1.1")
    message = str(caught.value)
    assert "/studies/{uid}/series/{uid}/instances/{uid}" in message and "HTTP 404" in message
    assert "1.2.840.99" not in message
    client.close()
