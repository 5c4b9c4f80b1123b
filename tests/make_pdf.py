"""The example PDFs under jobs/data/pdfs/ are made by `pdf()`: minimal, valid PDF 1.4 files
with one page of text. Run `python -m tests.make_pdf` from the repository root to
write them again."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = {
    "invoice-0042.pdf": "Invoice 0042: 3 licences, total EUR 270, due 2026-12-01.",
    "minutes-2026-11.pdf": "Minutes: the team agreed to ship the survey tool in December.",
}


def pdf(text: str) -> bytes:
    """One Letter-size page showing `text` in Helvetica; xref offsets computed exactly."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


if __name__ == "__main__":
    folder = Path("jobs/data/pdfs")
    for name, text in EXAMPLES.items():
        (folder / name).write_bytes(pdf(text))
