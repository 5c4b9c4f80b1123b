"""runner.compile: custom ids, request lines, chunking and the compile command."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from runner import compile as comp
from runner.cli import cli
from runner.compile.files import write_compiled
from runner.errors import InputError
from runner.render import Renderer, keyed_inputs
from tests.conftest import REPO
from tests.jobkit import write_job

ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _files(n: int, size: int = 40) -> dict[str, str | bytes]:
    return {f"data/{i:03d}.txt": f"text {i} " + "x" * size for i in range(n)}


def _snapshot(job_dir: Path) -> list[tuple[tuple[str, ...], bytes, tuple[str, ...]]]:
    from runner import spec

    job = spec.load_job(job_dir / "job.yaml")
    chunks = comp.make_chunks(comp.iter_requests(job), job.max_requests, job.max_bytes)
    return [(c.betas, c.body, c.custom_ids) for c in chunks]


def test_custom_id_format_and_bits() -> None:
    """`br_` + 40 hex digits: 160 bits of sha256, within the API's pattern."""
    cid = comp.custom_id("job", "key", {"model": "m"}, ["b"])
    assert ID_RE.match(cid) and cid.startswith("br_") and len(cid) == 43
    assert comp.custom_id("job", "key", {"model": "m"}, ["b"]) == cid


def test_custom_id_ignores_param_key_order_and_beta_order() -> None:
    """Canonical params (sorted keys) and a sorted beta set: order carries no meaning."""
    a = comp.custom_id("j", "k", {"model": "m", "max_tokens": 1}, ["x", "y"])
    b = comp.custom_id("j", "k", {"max_tokens": 1, "model": "m"}, ["y", "x"])
    assert a == b


@pytest.mark.parametrize(
    "change",
    [
        ("other", "k", {"model": "m"}, ()),
        ("j", "k2", {"model": "m"}, ()),
        ("j", "k", {"model": "m2"}, ()),
        ("j", "k", {"model": "m"}, ("beta",)),
    ],
)
def test_custom_id_changes_with_any_part(
    change: tuple[str, str, dict[str, str], tuple[str, ...]],
) -> None:
    """Job name, input key, params and betas all feed the id."""
    assert comp.custom_id(*change) != comp.custom_id("j", "k", {"model": "m"}, ())


def test_request_line_holds_the_rendered_params(tmp_path: Path) -> None:
    """The line is the params in their natural order, under the id `custom_id` gives."""
    job = write_job(
        tmp_path, _files(2), system={"text": "Sys {{ job.name }}", "cache": "5m"}, betas=["b1"]
    )
    items = list(keyed_inputs(job))
    for item, request in zip(items, comp.iter_requests(job), strict=True):
        params = Renderer(job).params(item)
        line = orjson.loads(request.line)
        assert line == {"custom_id": request.custom_id, "params": params}
        assert request.custom_id == comp.custom_id(job.name, item.key, params, job.betas)
        assert request.line == orjson.dumps(line)  # natural order: model first
        assert request.betas == ("b1",) and request.input_path == item.path


def test_same_job_twice_is_byte_identical(tmp_path: Path) -> None:
    write_job(tmp_path / "a", _files(5), betas=["z", "a"])
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "a")


def test_other_folder_and_working_directory_give_identical_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids depend on the job's content, not where it lives or where it is run from."""
    write_job(tmp_path / "a", _files(5))
    first = _snapshot(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "b")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert _snapshot(tmp_path / "elsewhere" / "b") == first


def test_ids_identical_in_a_fresh_process(tmp_path: Path) -> None:
    """A new interpreter (other hash seed, other cwd) compiles the same bytes."""
    job = write_job(tmp_path / "a", _files(3))
    write_compiled(job, tmp_path / "here")
    (tmp_path / "cwd").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "123"}
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "compile",
        str(job.path),
        "--out",
        str(tmp_path / "there"),
    ]
    subprocess.run(cmd, cwd=tmp_path / "cwd", env=env, check=True, capture_output=True)
    for name in ("chunk-0001.json", "manifest.json"):
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "there" / name).read_bytes()


def test_chunks_respect_both_limits(tmp_path: Path) -> None:
    """A small max_bytes forces many chunks; none passes either limit; order is kept."""
    job = write_job(tmp_path, _files(30, size=300), batch={"max_requests": 4, "max_bytes": 1500})
    requests = list(comp.iter_requests(job))
    chunks = list(comp.make_chunks(requests, job.max_requests, job.max_bytes))
    assert len(chunks) > 8
    for chunk in chunks:
        assert len(chunk.body) <= 1500 and len(chunk.custom_ids) <= 4
        assert [r["custom_id"] for r in orjson.loads(chunk.body)["requests"]] == list(
            chunk.custom_ids
        )
    assert [c for chunk in chunks for c in chunk.custom_ids] == [r.custom_id for r in requests]


def test_chunk_body_is_the_framed_lines(tmp_path: Path) -> None:
    job = write_job(tmp_path, _files(3))
    requests = list(comp.iter_requests(job))
    (chunk,) = comp.make_chunks(requests, 100, 10**6)
    assert chunk.body == b'{"requests":[' + b",".join(r.line for r in requests) + b"]}"
    assert chunk.input_keys == tuple(r.input_key for r in requests)


def test_chunk_filled_exactly_to_max_bytes(tmp_path: Path) -> None:
    """The byte limit is inclusive and measured on the real bytes."""
    job = write_job(tmp_path, _files(4))
    requests = list(comp.iter_requests(job))
    exact = len(b'{"requests":[' + b",".join(r.line for r in requests[:2]) + b"]}")
    chunks = list(comp.make_chunks(requests, 100, exact))
    assert len(chunks[0].body) == exact and len(chunks[0].custom_ids) == 2


def test_oversized_request_is_refused_naming_its_input(tmp_path: Path) -> None:
    job = write_job(
        tmp_path, {"data/big.txt": "x" * 5000, "data/small.txt": "y"}, batch={"max_bytes": 2000}
    )
    with pytest.raises(InputError, match=r"input 'data/big\.txt'.*more than one batch may hold"):
        list(comp.iter_requests(job))


def test_make_chunks_refuses_a_request_no_chunk_can_hold(tmp_path: Path) -> None:
    job = write_job(tmp_path, _files(1, size=500))
    with pytest.raises(InputError, match=r"data/000\.txt"):
        list(comp.make_chunks(comp.iter_requests(job), 10, 300))


def test_limits_are_clamped_to_the_api() -> None:
    packer = comp.Packer(10**9, 10**12)
    assert packer.max_requests == 100_000 and packer.max_bytes == 256_000_000


def _req(cid: str, betas: tuple[str, ...]) -> comp.CompiledRequest:
    line = orjson.dumps({"custom_id": cid, "params": {}})
    return comp.CompiledRequest(cid, cid, None, line, betas)


def test_one_beta_set_per_chunk() -> None:
    """Requests with different beta sets never share a chunk; each set keeps input order."""
    reqs = [_req(f"r{i}", ("a",) if i % 2 else ()) for i in range(7)]
    chunks = list(comp.make_chunks(reqs, 2, 10**6))
    for chunk in chunks:
        assert {r.betas for r in reqs if r.custom_id in chunk.custom_ids} == {chunk.betas}
        assert len(chunk.custom_ids) <= 2
    plain = [c for ch in chunks if ch.betas == () for c in ch.custom_ids]
    assert plain == ["r0", "r2", "r4", "r6"]
    assert sorted(c for ch in chunks for c in ch.custom_ids) == sorted(r.custom_id for r in reqs)


def test_same_pending_set_gives_same_chunks() -> None:
    reqs = [_req(f"r{i}", ("a",) if i % 3 else ()) for i in range(20)]
    first = [(c.betas, c.body) for c in comp.make_chunks(reqs, 3, 10**6)]
    assert first == [(c.betas, c.body) for c in comp.make_chunks(reqs, 3, 10**6)]


def test_write_compiled_manifest(tmp_path: Path) -> None:
    """Chunk files are the make_chunks bodies; the manifest lists their sha256 and requests."""
    job = write_job(tmp_path, _files(10, size=200), batch={"max_bytes": 1200})
    out = tmp_path / "compiled"
    (out).mkdir()
    (out / "chunk-0099.json").write_text("stale")
    written = write_compiled(job, out)
    chunks = list(comp.make_chunks(comp.iter_requests(job), job.max_requests, job.max_bytes))
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    assert len(written) == len(chunks) == len(manifest["chunks"]) > 1
    assert not (out / "chunk-0099.json").exists()
    for entry, chunk in zip(manifest["chunks"], chunks, strict=True):
        body = (out / entry["file"]).read_bytes()
        assert body == chunk.body
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
        assert entry["bytes"] == len(body) and entry["requests"] == len(chunk.custom_ids)
    ids = [c for chunk in chunks for c in chunk.custom_ids]
    assert [r["custom_id"] for r in manifest["requests"]] == ids
    assert manifest["requests"][0]["input_key"] == "data/000.txt"


def test_compile_cli(tmp_path: Path) -> None:
    job = write_job(tmp_path, _files(3))
    result = CliRunner().invoke(cli, ["compile", str(job.path), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "3 requests in 1 chunk" in result.output
    manifest = orjson.loads((tmp_path / "c" / "manifest.json").read_bytes())
    body = (tmp_path / "c" / "chunk-0001.json").read_bytes()
    assert manifest["chunks"][0]["sha256"] == hashlib.sha256(body).hexdigest()


def test_compile_cli_input_error_exits_1(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": ""})
    result = CliRunner().invoke(cli, ["compile", str(job.path), "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "empty" in result.output


def test_schema_property_order_is_kept_in_the_body(tmp_path: Path) -> None:
    """Order inside params can matter to the API (schemas), so the body keeps it."""
    schema = {"type": "object", "properties": {"zeta": {"type": "string"}, "alpha": {}}}
    job = write_job(tmp_path, _files(1), params={"output_config": {"format": schema}})
    (request,) = comp.iter_requests(job)
    assert request.line.index(b'"zeta"') < request.line.index(b'"alpha"')
    assert request.line.index(b'"model"') < request.line.index(b'"messages"')
