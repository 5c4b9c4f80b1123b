"""Generated reference docs stay in step with their sources."""

from __future__ import annotations

import pytest

from scripts import docgen


@pytest.mark.parametrize("path", sorted(docgen.outputs()), ids=lambda p: p.name)
def test_committed_reference_is_current(path) -> None:  # type: ignore[no-untyped-def]
    """Run `python -m scripts.docgen` after changing the schema or a command."""
    expected = docgen.outputs()[path]
    assert path.read_text(encoding="utf-8") == expected, f"{path} is stale: run make docs"


def test_every_schema_property_appears_in_the_job_reference() -> None:
    text = docgen.job_reference()
    for key in ("`input.glob`", "`system.cache`", "`output.table`", "`batch.max_bytes`"):
        assert key in text
