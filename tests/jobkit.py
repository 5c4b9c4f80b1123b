"""Helpers for the compile/plan tests: write a small job (and its inputs) under a folder."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import yaml

from runner import spec
from runner.spec import JobSpec, yaml_source
from runner.spec import load as spec_load


def base_doc(**overrides: Any) -> dict[str, Any]:
    """A valid job document reading data/*.txt; `overrides` replace top-level fields."""
    doc: dict[str, Any] = {
        "version": 1,
        "name": "t",
        "input": {"glob": "data/*.txt"},
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "prompt": "Summarise: {{ input.text }}",
        "output": {"type": "jsonl", "path": "out/t.jsonl"},
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def write_job(
    folder: Path, files: dict[str, str | bytes] | None = None, **overrides: Any
) -> JobSpec:
    """Write `files` (relative path -> content) and a job file into `folder`, load it."""
    return spec.load_job(_write(folder, files, overrides))


def unchecked_job(
    folder: Path, files: dict[str, str | bytes] | None = None, **overrides: Any
) -> JobSpec:
    """Like `write_job`, but skip the static template checks of `validate`.

    For defence-in-depth tests: the renderer must refuse what validation would have caught.
    """
    job_path = _write(folder, files, overrides)
    loaded = yaml_source.load_yaml(job_path.read_text(encoding="utf-8"), job_path.name)
    return spec_load.build_spec(job_path, loaded.data, loaded.positions, loaded.text_starts)


def _write(folder: Path, files: dict[str, str | bytes] | None, overrides: dict[str, Any]) -> Path:
    for rel, content in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if overrides.get("input", {}).get("as", "text") != "text" and "prompt" not in overrides:
        overrides["prompt"] = "Summarise {{ input.name }}"  # binary inputs have no input.text
    job_path = folder / "job.yaml"
    job_path.write_text(yaml.safe_dump(base_doc(**overrides), sort_keys=False), encoding="utf-8")
    return job_path


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A minimal valid PNG (8-bit greyscale), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(text: str = "Hello") -> bytes:
    """A minimal valid one-page PDF with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
