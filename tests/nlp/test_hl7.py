"""The tolerant HL7 v2 reader: structure, escapes, and the text of ORM / ORU messages."""

from __future__ import annotations

import pytest

from radlens.errors import InputError, UnsupportedFormatError
from radlens.nlp.hl7 import Separators, decode, looks_like_hl7, note_text, parse_hl7


def segment(name: str, fields: dict[int, str], sep: str = "|") -> str:
    """A segment with ``fields`` at their HL7 numbers (not for MSH)."""
    values = [fields.get(n, "") for n in range(1, max(fields) + 1)]
    return sep.join([name, *values])


ORM = "\r".join(
    [
        "MSH|^~\\&|RIS|GENHOSP|RADLENS|GENHOSP|20240101120000||ORM^O01^ORM_O01|MSG001|P|2.5.1",
        "PID|1||123456^^^GENHOSP^MR||DOE^JANE",
        "ORC|NW|ORD1",
        segment(
            "OBR",
            {
                1: "1",
                2: "ORD1",
                4: "71046^XR CHEST 2 VIEWS^CPT",
                7: "20240101115500",
                13: "Fever and cough x3 days",
                31: "^Rule out pneumonia~^Eval for effusion",
            },
        ),
        "NTE|1||Hx of COPD. No prior pneumothorax.",
    ]
)

ORU = "\r\n".join(
    [
        "MSH|^~\\&|RIS|GENHOSP|EMR|GENHOSP|20240102090000||ORU^R01|MSG002|P|2.3",
        "OBR|1|ORD1||71046^XR CHEST 2 VIEWS",
        "OBX|1|TX|71046&GDT^Findings||Heart size is normal.~No pleural effusion.||||||F",
        "OBX|2|TX|71046&IMP^Impression||Possible right lower lobe pneumonia.||||||F",
        "OBX|3|NM|HR^Heart rate||72|bpm|||||F",
    ]
)


def test_parse_reads_segments_and_message_type() -> None:
    msg = parse_hl7(ORM)
    assert [s.name for s in msg.segments] == ["MSH", "PID", "ORC", "OBR", "NTE"]
    assert msg.message_type == "ORM^O01^ORM_O01"


def test_msh_fields_are_numbered_as_the_standard_numbers_them() -> None:
    msh = parse_hl7(ORM).first("MSH")
    assert msh is not None
    assert msh.field(1) == "|"
    assert msh.field(2) == "^~\\&"
    assert msh.field(3) == "RIS"
    assert msh.field(12) == "2.5.1"


def test_obr_reason_for_study_repetitions_and_clinical_information() -> None:
    obr = parse_hl7(ORM).first("OBR")
    assert obr is not None
    assert obr.text(13) == "Fever and cough x3 days"
    assert obr.repetitions(31) == [["", "Rule out pneumonia"], ["", "Eval for effusion"]]


def test_short_segments_read_as_empty_fields() -> None:
    obr = parse_hl7(ORU).first("OBR")
    assert obr is not None
    assert obr.field(31) == "" and obr.text(13) == ""


def test_note_text_of_an_order_puts_reason_first_then_notes() -> None:
    assert note_text(parse_hl7(ORM)).splitlines() == [
        "REASON FOR STUDY: Rule out pneumonia; Eval for effusion",
        "CLINICAL INFORMATION: Fever and cough x3 days",
        "NOTE: Hx of COPD. No prior pneumothorax.",
    ]


def test_note_text_of_a_result_uses_obx_identifiers_as_headers_and_skips_numbers() -> None:
    assert note_text(parse_hl7(ORU)).splitlines() == [
        "REPORT: Heart size is normal.",
        "No pleural effusion.",
        "IMPRESSION: Possible right lower lobe pneumonia.",
    ]


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n", "\n\n"])
def test_any_line_ending_separates_segments(separator: str) -> None:
    text = separator.join(["MSH|^~\\&|A|B", "OBR|1", "NTE|1||note"])
    assert [s.name for s in parse_hl7(text).segments] == ["MSH", "OBR", "NTE"]


def test_mllp_framing_is_dropped() -> None:
    text = "\x0bMSH|^~\\&|A|B\rNTE|1||framed\r\x1c\r"
    assert looks_like_hl7(text)
    assert note_text(parse_hl7(text)) == "NOTE: framed"


def test_custom_separators_from_msh_are_honoured() -> None:
    text = "MSH#*~\\&#A#B\r" + segment("OBR", {1: "1", 31: "*Rule out PTX"}, sep="#")
    msg = parse_hl7(text)
    assert msg.separators == Separators("#", "*", "~", "\\", "&")
    assert note_text(msg) == "REASON FOR STUDY: Rule out PTX"


def test_message_without_msh_uses_default_separators() -> None:
    assert note_text(parse_hl7("NTE|1||no header here")) == "NOTE: no header here"


def test_lines_that_are_not_segments_are_skipped() -> None:
    msg = parse_hl7("MSH|^~\\&|A\rgarbage line\rNTE|1||kept")
    assert [s.name for s in msg.segments] == ["MSH", "NTE"]


def test_text_without_any_segment_is_refused_with_an_input_error() -> None:
    with pytest.raises(UnsupportedFormatError, match="no segment") as info:
        parse_hl7("just a clinical note, no HL7 here")
    assert isinstance(info.value, InputError)
    assert "clinical note" not in str(info.value)  # never echoes the text


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("line1\\.br\\line2", "line1\nline2"),
        ("\\X41\\B", "AB"),
        ("\\H\\bold\\N\\", "bold"),
        ("plain", "plain"),
    ],
)
def test_decode_undoes_the_escape_sequences(raw: str, decoded: str) -> None:
    assert decode(raw) == decoded


def test_escaped_separators_inside_text_survive_to_the_note() -> None:
    text = "MSH|^~\\&|A\rOBX|1|FT|X^Findings||Effusion \\T\\ atelectasis\\.br\\No PTX"
    assert note_text(parse_hl7(text)).splitlines() == [
        "REPORT: Effusion & atelectasis",
        "No PTX",
    ]


def test_looks_like_hl7_only_for_msh_first() -> None:
    assert looks_like_hl7("  MSH|^~\\&|A")
    assert not looks_like_hl7("Indication: MSH|")
