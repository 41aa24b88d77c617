"""Clinical notes and prior reports: finding mentions, negation, uncertainty, alignment.

``extract`` turns free text (a note, a prior report, HL7 v2 ORM/ORU message text) into
``Mention`` objects; ``align`` compares them with the AI's findings and flags discordance
for the radiologist; ``evaluate_reports`` measures extraction on curated report labels.
No third-party imports: a rule-based NegEx/ConText implementation (``docs/nlp.md`` says why).
"""

from radlens.nlp.alignment import Alignment, Concordance, align
from radlens.nlp.hl7 import Hl7Message, note_text, parse_hl7
from radlens.nlp.mentions import Assertion, Extraction, Mention, extract

__all__ = [
    "Alignment",
    "Assertion",
    "Concordance",
    "Extraction",
    "Hl7Message",
    "Mention",
    "align",
    "extract",
    "note_text",
    "parse_hl7",
]
