"""A small, tolerant HL7 v2 reader: the text of orders (ORM) and results (ORU) for ``nlp``.

Only what finding extraction needs (HL7 v2.5.1, chapters 2 and 4 and 7):

* the message structure of chapter 2: segments split at carriage returns (line feeds and
  CR LF accepted too, MLLP framing bytes dropped), fields at the separator MSH-1 declares,
  repetitions, components and the escape sequences of section 2.7 (``\\F\\ \\S\\ \\T\\ \\R\\
  \\E\\ \\.br\\ \\Xhh\\``; formatting commands such as ``\\H\\`` are dropped);
* OBR-13 Relevant Clinical Information and OBR-31 Reason for Study (CWE: the text
  component, else the identifier) of chapter 4;
* OBX-5 Observation Value of text types (TX, FT, ST, CE, CWE) and NTE-3 Comment
  of chapter 7.

Tolerant means: unknown segments are kept and ignored, short segments read as empty fields,
a message without MSH is read with the default separators ``|^~\\&``, and a blank line is not a
segment. Only text with no segment at all is refused.

Example:
    >>> msg = parse_hl7("MSH|^~\\\\&|RIS|H|RL|H|202401011200||ORM^O01|1|P|2.5.1\\r"
    ...                 "OBR|1|||71046^XR CHEST 2V|||||||||Cough||||||||||||||||||^r/o PNA")
    >>> msg.message_type
    'ORM^O01'
    >>> print(note_text(msg))
    REASON FOR STUDY: r/o PNA
    CLINICAL INFORMATION: Cough
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from radlens.errors import UnsupportedFormatError

TEXT_VALUE_TYPES = frozenset({"TX", "FT", "ST", "CE", "CWE", "TXT"})
"""OBX-2 value types whose OBX-5 is read as text."""


@dataclass(frozen=True)
class Separators:
    """The encoding characters of MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True)
class Segment:
    """One segment: its name and raw fields, numbered as the standard numbers them."""

    name: str
    raw_fields: tuple[str, ...] = field(repr=False)
    separators: Separators = field(default=Separators(), repr=False)

    def field(self, number: int) -> str:
        """SEG-``number`` as written (escapes not decoded); empty when absent.

        For MSH, MSH-1 is the field separator itself, so numbering is shifted by one.
        """
        if self.name == "MSH":
            if number == 1:
                return self.separators.field
            number -= 1
        return self.raw_fields[number] if 0 < number < len(self.raw_fields) else ""

    def repetitions(self, number: int) -> list[list[str]]:
        """SEG-``number`` as repetitions of decoded components."""
        sep = self.separators
        return [
            [decode(c, sep) for c in rep.split(sep.component)]
            for rep in self.field(number).split(sep.repetition)
            if rep
        ]

    def text(self, number: int) -> str:
        """SEG-``number`` decoded, repetitions joined by line breaks, components by spaces."""
        return "\n".join(
            " ".join(c for c in comps if c).strip() for comps in self.repetitions(number)
        ).strip()


@dataclass(frozen=True)
class Hl7Message:
    """An HL7 v2 message: its segments in order."""

    segments: tuple[Segment, ...]
    separators: Separators = Separators()

    @property
    def message_type(self) -> str:
        """MSH-9 (e.g. ``"ORU^R01"``), or empty without MSH."""
        msh = self.first("MSH")
        return msh.field(9).split(self.separators.subcomponent)[0] if msh else ""

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.name == name)


_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}$")
_MLLP = str.maketrans("", "", "\x0b\x1c")


def looks_like_hl7(text: str) -> bool:
    """Whether text starts (after framing bytes and white space) with an MSH segment."""
    return text.translate(_MLLP).lstrip().startswith("MSH")


def _separators(line: str) -> Separators:
    if not line.startswith("MSH") or len(line) < 4:
        return Separators()
    field_sep = line[3]
    chars = line[4:].split(field_sep, 1)[0]
    defaults = "^~\\&"
    chars = chars + defaults[len(chars) :] if len(chars) < 4 else chars
    return Separators(field_sep, chars[0], chars[1], chars[2], chars[3])


def parse_hl7(text: str) -> Hl7Message:
    """Segments of an HL7 v2 message.

    Raises:
        UnsupportedFormatError: no line of the text is a segment.
    """
    lines = [ln.strip() for ln in re.split(r"\r\n|\r|\n", text.translate(_MLLP))]
    lines = [ln for ln in lines if ln]
    msh = next((ln for ln in lines if ln.startswith("MSH")), "")
    sep = _separators(msh)
    segments = []
    for line in lines:
        parts = line.split(sep.field)
        if _SEGMENT_NAME.match(parts[0]):
            segments.append(Segment(parts[0], tuple(parts), sep))
    if not segments:
        raise UnsupportedFormatError(
            None, "not HL7 v2 message text: no segment (MSH|..., OBR|..., OBX|...) found"
        )
    return Hl7Message(tuple(segments), sep)


_ESCAPE_NAMES = {"F": "field", "S": "component", "T": "subcomponent", "R": "repetition"}


def decode(value: str, sep: Separators = Separators()) -> str:
    """Undo the escape sequences of HL7 v2.5.1 section 2.7 in one component."""
    if sep.escape not in value:
        return value
    esc = re.escape(sep.escape)

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _ESCAPE_NAMES:
            return str(getattr(sep, _ESCAPE_NAMES[code]))
        if code == "E":
            return sep.escape
        if code == ".br":
            return "\n"
        if code.startswith("X") and re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", code):
            return bytes.fromhex(code[1:]).decode("latin-1")
        return " " if code.startswith(".") else ""  # .sp, .in, \H\, \N\: formatting only

    return re.sub(f"{esc}([^{esc}]*){esc}", one, value)


def _cwe_text(segment: Segment, number: int) -> str:
    """Text of a CWE/CE field: component 2 (text), else component 1, per repetition."""
    texts = []
    for comps in segment.repetitions(number):
        text = comps[1] if len(comps) > 1 and comps[1] else comps[0]
        if text:
            texts.append(text.strip())
    return "; ".join(texts)


def _obx_header(segment: Segment) -> str:
    """A section header from OBX-3, the observation identifier, where it names one."""
    ident = segment.text(3).lower()
    if "impression" in ident or "&imp" in segment.field(3).lower():
        return "IMPRESSION:"
    if re.search(r"indication|history|reason", ident):
        return "INDICATION:"
    if re.search(r"comparison", ident):
        return "COMPARISON:"
    return "REPORT:"


def note_text(message: Hl7Message) -> str:
    """The clinical text of an order or result as a sectioned note, in segment order.

    OBR-31 becomes "REASON FOR STUDY:", OBR-13 "CLINICAL INFORMATION:", OBX text values
    follow under a header from OBX-3 (else "REPORT:"), NTE comments under "NOTE:".
    """
    lines: list[str] = []
    header = ""

    def add(new_header: str, text: str) -> None:
        nonlocal header
        if not text:
            return
        if new_header != header:
            lines.append(f"{new_header} {text}")
            header = new_header
        else:
            lines.append(text)

    for seg in message.segments:
        if seg.name == "OBR":
            add("REASON FOR STUDY:", _cwe_text(seg, 31))
            add("CLINICAL INFORMATION:", seg.text(13))
        elif seg.name == "OBX" and seg.field(2).upper() in TEXT_VALUE_TYPES:
            value_type = seg.field(2).upper()
            text = _cwe_text(seg, 5) if value_type in {"CE", "CWE"} else _obx_value(seg)
            add(_obx_header(seg), text)
        elif seg.name == "NTE":
            add("NOTE:", seg.text(3))
    return "\n".join(lines)


def _obx_value(segment: Segment) -> str:
    """OBX-5 text: repetitions are lines; components joined (TX/FT carry one each)."""
    sep = segment.separators
    reps = segment.field(5).split(sep.repetition)
    return "\n".join(
        decode(rep.replace(sep.component, " "), sep).strip() for rep in reps if rep.strip()
    )
