"""runner.render: params of one item, template errors and the sandbox."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from runner.errors import InputError
from runner.inputs import InputItem
from runner.render import Renderer, keyed_inputs
from runner.spec import JobSpec
from tests.jobkit import png_bytes, unchecked_job, write_job


def render_params(job: JobSpec, item: InputItem) -> dict[str, Any]:
    """One item's params through a fresh renderer."""
    return Renderer(job).params(item)


def _params(
    tmp_path: Path, files: dict[str, str | bytes] | None = None, **overrides: object
) -> list[dict[str, object]]:
    job = write_job(tmp_path, files or {"data/a.txt": "hello"}, **overrides)
    return [render_params(job, item) for item in keyed_inputs(job)]


def test_prompt_params_in_order(tmp_path: Path) -> None:
    """model, max_tokens, system, messages, then params in their own order."""
    (params,) = _params(
        tmp_path,
        vars={"lang": "French"},
        system={"text": "You are {{ job.name }} on {{ job.model }}", "cache": "1h"},
        prompt="In {{ vars.lang }}: {{ input.text }} ({{ input.name }})",
        params={"stop_sequences": ["</x>"], "metadata": {"user_id": "u"}},
    )
    assert list(params) == [
        "model",
        "max_tokens",
        "system",
        "messages",
        "stop_sequences",
        "metadata",
    ]
    assert params["system"] == [
        {
            "type": "text",
            "text": "You are t on claude-sonnet-4-6",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    assert params["messages"] == [{"role": "user", "content": "In French: hello (a.txt)"}]


def test_system_without_cache_has_no_cache_control(tmp_path: Path) -> None:
    (params,) = _params(tmp_path, system="Be brief.")
    assert params["system"] == [{"type": "text", "text": "Be brief."}]


def test_no_system(tmp_path: Path) -> None:
    (params,) = _params(tmp_path)
    assert "system" not in params


def test_prompt_file(tmp_path: Path) -> None:
    (tmp_path / "p.j2").write_text("File prompt: {{ input.stem }}", encoding="utf-8")
    (params,) = _params(tmp_path, prompt=None, prompt_file="p.j2")
    assert params["messages"] == [{"role": "user", "content": "File prompt: a"}]


def test_messages_each_rendered(tmp_path: Path) -> None:
    (params,) = _params(
        tmp_path,
        prompt=None,
        messages=[
            {"role": "user", "content": "Example"},
            {"role": "assistant", "content": "Answer for {{ job.name }}"},
            {"role": "user", "content": "{{ input.text }}"},
        ],
    )
    assert params["messages"] == [
        {"role": "user", "content": "Example"},
        {"role": "assistant", "content": "Answer for t"},
        {"role": "user", "content": "hello"},
    ]


def test_image_block_comes_before_the_text(tmp_path: Path) -> None:
    (params,) = _params(
        tmp_path,
        {"img/a.png": png_bytes()},
        input={"glob": "img/*.png", "as": "image"},
        prompt="Describe {{ input.name }}",
    )
    messages: Any = params["messages"]
    (message,) = messages
    content = message["content"]
    assert [b["type"] for b in content] == ["image", "text"]
    assert content[1] == {"type": "text", "text": "Describe a.png"}


def test_blocks_go_with_the_last_user_turn(tmp_path: Path) -> None:
    (params,) = _params(
        tmp_path,
        {"img/a.png": png_bytes()},
        input={"glob": "img/*.png", "as": "image"},
        prompt=None,
        messages=[
            {"role": "user", "content": "Example"},
            {"role": "assistant", "content": "Ok"},
            {"role": "user", "content": "This one"},
        ],
    )
    messages = params["messages"]
    assert messages[0]["content"] == "Example"  # type: ignore[index]
    assert [b["type"] for b in messages[2]["content"]] == ["image", "text"]  # type: ignore[index]


def test_undefined_variable_names_input_and_line(tmp_path: Path) -> None:
    job = unchecked_job(
        tmp_path, {"data/a.txt": "x"}, prompt="line one\nline two {{ input.nope }}\n"
    )
    (item,) = keyed_inputs(job)
    prompt = job.prompt
    assert prompt is not None
    expected_line = prompt.line + 1
    with pytest.raises(InputError) as info:
        render_params(job, item)
    message = str(info.value)
    assert f"job.yaml:{expected_line}: $.prompt: input 'data/a.txt'" in message
    assert "nope" in message


def test_record_missing_a_template_field(tmp_path: Path) -> None:
    job = write_job(
        tmp_path,
        {"a.jsonl": '{"text": "a"}\n{"other": "b"}\n'},
        input={"jsonl": "a.jsonl"},
        prompt="{{ input.record.text }}",
    )
    renderer = Renderer(job)
    first, second = keyed_inputs(job)
    assert renderer.params(first)["messages"] == [{"role": "user", "content": "a"}]
    with pytest.raises(
        InputError,
        match=r"input '2'.*this input has no field 'text': .batchrun validate. lists every record",
    ):
        renderer.params(second)


def test_record_and_file_fields_are_there_on_their_own_as_in_the_key(tmp_path: Path) -> None:
    """`{{ record.body }}` in a prompt is `{{ input.record.body }}`, as in `key:`; a file's
    fields likewise (`{{ text }}`, `{{ name }}`)."""
    records = write_job(
        tmp_path / "r",
        {"a.jsonl": '{"id": "x", "body": "hello"}\n'},
        input={"jsonl": "a.jsonl", "key": "{{ record.id }}"},
        prompt="{{ record.body }}/{{ input.record.body }}/{{ line }}",
    )
    (item,) = keyed_inputs(records)
    assert item.key == "x"
    assert Renderer(records).params(item)["messages"][0]["content"] == "hello/hello/1"
    files = write_job(tmp_path / "f", {"data/a.txt": "text A"}, prompt="{{ name }}: {{ text }}")
    (item,) = keyed_inputs(files)
    assert Renderer(files).params(item)["messages"][0]["content"] == "a.txt: text A"


def test_expression_failing_on_the_data_is_an_input_error(tmp_path: Path) -> None:
    """A template expression that raises on one input's data names it, with the line."""
    job = write_job(
        tmp_path,
        {"a.jsonl": '{"n": 1}\n{"n": "x"}\n'},
        input={"jsonl": "a.jsonl"},
        prompt="Value:\n{{ input.record.n + 1 }}",
    )
    first, second = keyed_inputs(job)
    assert render_params(job, first)["messages"] == [{"role": "user", "content": "Value:\n2"}]
    with pytest.raises(InputError, match=r"job\.yaml:\d+: \$\.prompt: input '2': TypeError"):
        render_params(job, second)


def test_prompt_file_error_points_into_that_file(tmp_path: Path) -> None:
    (tmp_path / "p.j2").write_text("a\nb\n{{ missing }}\n", encoding="utf-8")
    job = unchecked_job(tmp_path, {"data/a.txt": "x"}, prompt=None, prompt_file="p.j2")
    with pytest.raises(InputError, match=r"p\.j2:3: \$\.prompt_file: input 'data/a\.txt'"):
        [render_params(job, item) for item in keyed_inputs(job)]


@pytest.mark.parametrize(
    "escape",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ input.__class__.__init__.__globals__ }}",
        "{{ ''.format.__self__ }}",
        "{{ vars.__class__.__subclasses__() }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_refused(tmp_path: Path, escape: str) -> None:
    job = unchecked_job(tmp_path, {"data/a.txt": "x"}, prompt=escape)
    (item,) = keyed_inputs(job)
    with pytest.raises(InputError, match=r"refused by the template sandbox|has no attribute .__"):
        render_params(job, item)


def test_sandbox_error_message_is_clear(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": "x"}, prompt="{{ ''.__class__.__mro__ }}")
    (item,) = keyed_inputs(job)
    with pytest.raises(InputError, match=r"refused by the template sandbox: .*unsafe"):
        render_params(job, item)


def test_system_prompt_cannot_use_input(tmp_path: Path) -> None:
    """The system prompt is rendered once per job, so per-input variables are undefined."""
    job = unchecked_job(tmp_path, {"data/a.txt": "x"}, system="{{ input.text }}")
    with pytest.raises(InputError, match=r"system prompt: 'input' is undefined"):
        Renderer(job)


def test_empty_prompt_is_refused(tmp_path: Path) -> None:
    job = write_job(tmp_path, {"data/a.txt": "x"}, prompt="{{ '' }}  ")
    (item,) = keyed_inputs(job)
    with pytest.raises(InputError, match="rendered to empty text"):
        render_params(job, item)


def test_params_may_not_repeat_core_fields(tmp_path: Path) -> None:
    """The schema refuses this too; the renderer does not rely on it."""
    job = write_job(tmp_path, {"data/a.txt": "x"})
    job = dataclasses.replace(job, params={"system": "other"})
    with pytest.raises(InputError, match=r"params\.system is set by the job's own"):
        Renderer(job)


@pytest.mark.parametrize(
    "record",
    [
        {"id": "a-1"},
        {"id": 7},
        {"id": 7.5},
        {"id": True},
        {"id": None},
        {"id": {"nested": 1}},
        {"items": "shadowed by dict.items"},
    ],
)
@pytest.mark.parametrize("key", ["{{ record.id }}", "{{record.items}}", "{{ input.record.id }}"])
def test_key_shortcut_renders_as_jinja_does(
    tmp_path: Path, record: dict[str, object], key: str
) -> None:
    """The direct lookup for `{{ a.b }}` keys gives exactly Jinja's text, or defers to it."""
    from runner.inputs import InputItem
    from runner.render import KeyRenderer
    from runner.spec.templating import CompiledTemplate

    job = write_job(
        tmp_path, {"a.jsonl": "{}\n"}, input={"jsonl": "a.jsonl", "key": key}, prompt="x"
    )
    item = InputItem("1", None, {"record": record, "line": 1})
    assert job.input.key is not None
    context = {**item.context, "vars": {}, "job": {}, "input": item.context}
    try:
        expected = CompiledTemplate(job.input.key).render(context, "x")
    except InputError:
        with pytest.raises(InputError):
            KeyRenderer(job).render(item)
        return
    assert KeyRenderer(job).render(item) == expected


# --- the fast path for text with dotted names: the same text as Jinja, or Jinja itself ----

FAST_CONTEXT: dict[str, Any] = {
    "vars": {"lang": "en", "n": 3, "f": 1.5, "none": None, "flag": True, "items": "shadowed"},
    "job": {"name": "t", "model": "m"},
    "input": {"text": "héllo {{ not a template }}", "bytes": 12, "record": {"list": [1, 2]}},
}


@pytest.mark.parametrize(
    "source",
    [
        "Say {{ input.text }}",
        "{{input.text}}!\n",
        "a {{ vars.lang }} b {{ job.name }}{{ vars.n }}",
        "{{ input.bytes }} bytes",
        "{{ vars.f }} {{ vars.none }} {{ vars.flag }}",  # left to Jinja: not str or int
        "{{ input.record.list }}",
        "{{ vars.items }}",  # a dict attribute's name: Jinja's lookup differs, so Jinja
        "{{ vars.lang | upper }} {{ vars.lang }}",  # a filter: all of it through Jinja
        "{% if vars.n %}{{ vars.lang }}{% endif %}",
        "line one\r\nline {{ vars.lang }}",  # Jinja normalises the line ending
        "plain text, no substitution",
        "{{ vars.lang }}}",
    ],
)
def test_fast_path_renders_what_jinja_renders(tmp_path: Path, source: str) -> None:
    from runner.render import _Template
    from runner.spec.model import Template
    from runner.spec.templating import CompiledTemplate

    template = Template(source, tmp_path / "job.yaml")
    expected = CompiledTemplate(template).render(FAST_CONTEXT, "input 'x'")
    assert _Template(template).render(FAST_CONTEXT, "input 'x'") == expected


def test_fast_path_leaves_errors_to_jinja(tmp_path: Path) -> None:
    """An undefined name fails with Jinja's message, file and line, as before."""
    from runner.render import _Template
    from runner.spec.model import Template

    template = Template("Say {{ input.missing }}", tmp_path / "job.yaml", line=7)
    with pytest.raises(InputError, match=r"job\.yaml:7: .*input 'x'.*missing"):
        _Template(template).render(FAST_CONTEXT, "input 'x'")
