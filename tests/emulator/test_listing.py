"""List with after_id/before_id/limit and the SDK's auto-pagination in both directions."""

from __future__ import annotations

import anthropic
import pytest
from anthropic import Anthropic

from tests.emulator.conftest import requests


def _create(client: Anthropic, n: int) -> list[str]:
    return [client.messages.batches.create(requests=requests(1)).id for _ in range(n)]


def test_list_newest_first_with_auto_pagination(client: Anthropic) -> None:
    """Iterating follows after_id pages until has_more is false."""
    ids = _create(client, 7)
    page = client.messages.batches.list(limit=3)
    assert [b.id for b in page.data] == ids[::-1][:3] and page.has_more
    assert page.first_id == ids[6] and page.last_id == ids[4]
    assert [b.id for b in client.messages.batches.list(limit=3)] == ids[::-1]


def test_list_before_id_pages_towards_newer(client: Anthropic) -> None:
    """before_id gives the batches just newer than the cursor; the SDK keeps paging newer."""
    ids = _create(client, 6)
    page = client.messages.batches.list(before_id=ids[0], limit=2)
    assert [b.id for b in page.data] == [ids[2], ids[1]] and page.has_more
    seen = [b.id for b in client.messages.batches.list(before_id=ids[0], limit=2)]
    assert sorted(seen) == sorted(ids[1:]) and len(seen) == 5


def test_list_after_id_and_empty_page(client: Anthropic) -> None:
    """after_id gives older batches; past the oldest the page is empty with null ids."""
    ids = _create(client, 3)
    page = client.messages.batches.list(after_id=ids[2], limit=5)
    assert [b.id for b in page.data] == [ids[1], ids[0]] and not page.has_more
    empty = client.messages.batches.list(after_id=ids[0])
    assert empty.data == [] and empty.first_id is None and empty.last_id is None


def test_list_cursor_survives_delete(client: Anthropic) -> None:
    """A deleted batch used as a cursor still pages correctly."""
    ids = _create(client, 3)
    client.messages.batches.delete(ids[1])
    page = client.messages.batches.list(after_id=ids[1])
    assert [b.id for b in page.data] == [ids[0]]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}])
def test_list_bad_limit(client: Anthropic, params: dict[str, object]) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(extra_query=params)


def test_list_both_cursors_refused(client: Anthropic) -> None:
    ids = _create(client, 2)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(after_id=ids[0], before_id=ids[1])


def test_models_list_and_get(client: Anthropic) -> None:
    """Models list pages both ways; retrieve answers known ids and 404s unknown ones."""
    everything = [m.id for m in client.models.list(limit=4)]
    assert "claude-sonnet-4-5" in everything and len(everything) == len(set(everything))
    newer = [m.id for m in client.models.list(before_id=everything[-1], limit=3)]
    assert sorted(newer) == sorted(everything[:-1])
    info = client.models.retrieve("claude-opus-4-6")
    assert info.max_tokens == 128_000 and info.type == "model"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")
