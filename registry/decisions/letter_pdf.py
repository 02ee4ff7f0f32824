"""The decision letter as an A4 PDF, from the same content as the HTML letter (``registry.decisions.letter``).

ReportLab's built-in CID font STSong-Light (Adobe-GB1) sets the Chinese and the Latin text: PDF readers supply the
font, so nothing is embedded or shipped and the letter renders on a fresh machine. No Flask here.
"""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from registry.decisions.letter import Letter, Part

FONT = "STSong-Light"
CODE_FONT = "Courier"  # digests are ASCII: a fixed-width built-in font keeps them legible
MEDIA_TYPE = "application/pdf"

pdfmetrics.registerFont(UnicodeCIDFont(FONT))

_BODY = ParagraphStyle("body", fontName=FONT, fontSize=10.5, leading=16, wordWrap="CJK")
_ISSUER = ParagraphStyle("issuer", parent=_BODY, fontSize=12, alignment=1, spaceAfter=4)
_TITLE = ParagraphStyle("title", parent=_BODY, fontSize=18, leading=26, alignment=1, spaceAfter=6)
_NUMBER = ParagraphStyle("number", parent=_BODY, alignment=1, spaceAfter=12)
_HEADING = ParagraphStyle("heading", parent=_BODY, fontSize=13, leading=20, spaceBefore=10, spaceAfter=4)
_LABEL = ParagraphStyle("label", parent=_BODY)


def _markup(parts: tuple[Part, ...]) -> str:
    """ReportLab paragraph markup of ``parts`` (text escaped: a filing's texts are the city's, never markup)."""
    out = []
    for part in parts:
        text = escape(part.text)
        out.append(f'<font face="{CODE_FONT}" size="8">{text}</font>' if part.code else text)
    return "".join(out)


def render(letter: Letter) -> bytes:
    """The letter as PDF bytes: issuer, title, filing number, the facts as a table, then each section."""
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=letter.document_title,
        author=letter.issuer,
        subject=letter.title,
        lang=letter.lang,
    )
    story = [Paragraph(escape(letter.issuer), _ISSUER), Paragraph(escape(letter.title), _TITLE)]
    if letter.filing_number:
        story.append(Paragraph(f"{escape(letter.filing_number_label)}: <b>{escape(letter.filing_number)}</b>", _NUMBER))
    facts = Table(
        [[Paragraph(escape(f.label), _LABEL), Paragraph(_markup(f.parts), _BODY)] for f in letter.facts],
        colWidths=[40 * mm, None],
        hAlign="LEFT",
    )
    facts.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEABOVE", (0, 0), (-1, 0), 1, "#1a1a1a"),
                ("LINEBELOW", (0, -1), (-1, -1), 0.5, "#1a1a1a"),
            ]
        )
    )
    story += [Spacer(0, 4 * mm), facts]
    for section in letter.sections:
        story.append(Paragraph(escape(section.heading), _HEADING))
        paragraphs = [Paragraph(_markup(item), _BODY) for item in section.items]
        if section.kind == "p":
            story += paragraphs
        else:
            story.append(
                ListFlowable(
                    [ListItem(p) for p in paragraphs],
                    bulletType="1" if section.kind == "ol" else "bullet",
                    bulletFormat="%s." if section.kind == "ol" else None,
                    bulletFontName="Helvetica",
                    leftIndent=14,
                )
            )
    document.build(story)
    return buffer.getvalue()


def headers(decision_id: int) -> dict[str, str]:
    """Response headers for the letter: shown in the browser, saved under a name that says what it is."""
    return {"Content-Disposition": f'inline; filename="decision-letter-{decision_id}.pdf"'}
