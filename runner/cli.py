"""The command line: click parses options, one function does the work, errors map to exit
codes (DESIGN.md): 0 ok, 1 job or input error, 2 misuse, 3 internal error, 4 dead letters,
130 interrupted. No logic lives here beyond that mapping."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from runner import commands, emulator, log, spec, validate
from runner.errors import BatchrunError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_DEAD_LETTERS = 4
EXIT_INTERRUPTED = 130


class DefaultRunGroup(click.Group):
    """`batchrun JOB.yaml ...` is `batchrun run JOB.yaml ...`, also after group options
    (`batchrun --log-format json JOB.yaml`)."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


def _guard(fn: Callable[[], int]) -> int:
    """Run one command body, turning expected errors into messages and exit codes."""
    try:
        return fn()
    except BatchrunError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`batchrun export JOB | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        log.get("batchrun").exception("internal error: this is a bug in batchrun, please report it")
        return EXIT_INTERNAL


jobs_argument = click.argument(
    "jobs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)


@click.group(cls=DefaultRunGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="batchrun")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="Log renderer: console on a terminal and JSON lines otherwise by default.",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info"
)
def cli(log_format: log.LogFormat, log_level: str) -> None:
    """batchrun: run Anthropic Message Batches from version-controlled YAML job files."""
    log.configure(log_format, log_level)


@cli.command("validate")
# Folders and missing files are accepted here so that they are reported like any other
# problem, beside the other files' findings, with exit 1.
@click.argument("jobs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def validate_cmd(jobs: tuple[Path, ...], fmt: str) -> None:
    """Check job files; print every problem as FILE:LINE:COL: $.path: message.

    Exit 0 when every file is valid (warnings allowed), 1 otherwise.
    """
    sys.exit(_guard(lambda: _validate(jobs, fmt)))


def _validate(jobs: tuple[Path, ...], fmt: str) -> int:
    results = [validate.check_file(p.absolute()) for p in jobs]
    diagnostics = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        click.echo(orjson.dumps([d.as_dict() for d in diagnostics], option=orjson.OPT_INDENT_2))
    else:
        for d in diagnostics:
            click.echo(d.format())
        for r in results:
            if r.ok:
                click.echo(f"{validate.display_name(r.file)}: ok", err=True)
    return EXIT_OK if all(r.ok for r in results) else EXIT_ERROR


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each job's state in DIR/<job name>/ instead of .batchrun/ beside the job file.",
)
emulate_option = click.option(
    "--emulate",
    is_flag=True,
    help="Use an in-process emulator for this command only (its batches vanish after).",
)
emulator_config_option = click.option(
    "--emulator-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Fault and latency config for --emulate.",
)


@cli.command("run")
@jobs_argument
@click.option("--no-wait", is_flag=True, help="Do one reconcile pass and exit (cron/CI mode).")
@emulate_option
@state_dir_option
@emulator_config_option
def run_cmd(
    jobs: tuple[Path, ...],
    no_wait: bool,
    emulate: bool,
    state_dir: Path | None,
    emulator_config: Path | None,
) -> None:
    """Submit what is missing, collect what ended, retry what failed; until done."""
    if emulate and no_wait:
        raise click.UsageError(
            "--no-wait with --emulate leaves nothing to come back to: the emulator and its "
            "batches end with this command. Drop --no-wait, or start `batchrun emulator` "
            "and point ANTHROPIC_BASE_URL at it."
        )
    remote = commands.Remote(emulate, emulator_config)
    sys.exit(_guard(lambda: commands.run_jobs(jobs, no_wait, state_dir, remote)))


@cli.command("status")
@jobs_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@state_dir_option
def status_cmd(jobs: tuple[Path, ...], as_json: bool, state_dir: Path | None) -> None:
    """Batches, request counts, cost so far and dead letters of each job (from its state)."""
    sys.exit(_guard(lambda: commands.status_jobs(jobs, as_json, state_dir)))


# cancel and recover act on batches a previous command made, so they have no --emulate:
# an emulator started for them would hold none of those batches.
@cli.command("cancel")
@jobs_argument
@state_dir_option
def cancel_cmd(jobs: tuple[Path, ...], state_dir: Path | None) -> None:
    """Cancel the job's in-flight batches; the next plain run resubmits what was canceled."""
    sys.exit(_guard(lambda: commands.cancel_jobs(jobs, state_dir, commands.Remote())))


@cli.command("recover")
@jobs_argument
@state_dir_option
def recover_cmd(jobs: tuple[Path, ...], state_dir: Path | None) -> None:
    """Rebuild a lost state from the API: re-attach every result of the job's requests."""
    sys.exit(_guard(lambda: commands.recover_jobs(jobs, state_dir, commands.Remote())))


@cli.command("compile")
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for chunk-0001.json... and manifest.json.",
)
def compile_cmd(job: Path, out_dir: Path) -> None:
    """Write the exact batch request bodies of JOB without submitting anything."""
    sys.exit(_guard(lambda: _compile(job, out_dir)))


def _compile(job_path: Path, out_dir: Path) -> int:
    # Imported here, not at the top: the other commands never need the compile stack.
    from runner import compile as compile_

    chunks = compile_.write_compiled(spec.load_job(job_path), out_dir)
    requests = sum(c.requests for c in chunks)
    size = sum(c.size for c in chunks)
    noun = "chunk" if len(chunks) == 1 else "chunks"
    click.echo(f"{requests} requests in {len(chunks)} {noun} ({size / 1e6:.1f} MB) -> {out_dir}")
    return EXIT_OK


@cli.command("plan")
@jobs_argument
@click.option("--json", "as_json", is_flag=True, help="Print the plans as JSON.")
@click.option(
    "--count-tokens",
    is_flag=True,
    help="Exact input token counts from the count_tokens endpoint (one call per request).",
)
@state_dir_option
@click.option("--emulate", is_flag=True, help="With --count-tokens: ask an in-process emulator.")
def plan_cmd(
    jobs: tuple[Path, ...], as_json: bool, count_tokens: bool, state_dir: Path | None, emulate: bool
) -> None:
    """Show what a run would submit, with estimated tokens and cost; exit 1 over budget."""
    sys.exit(_guard(lambda: _plan(jobs, as_json, count_tokens, state_dir, emulate)))


def _plan(
    jobs: tuple[Path, ...], as_json: bool, count_tokens: bool, root: Path | None, emulate: bool
) -> int:
    # Imported here, not at the top: the other commands never need the compile stack.
    from runner import plan as plan_
    from runner import plan_format

    plans = commands.make_plans(jobs, count_tokens, root, commands.Remote(emulate=emulate))
    if as_json:
        click.echo(orjson.dumps([p.as_dict() for p in plans], option=orjson.OPT_INDENT_2))
    else:
        click.echo("\n\n".join(plan_format.format_plan(p) for p in plans))
    for p in plans:
        plan_.check_budget(p)
    return EXIT_OK


@cli.command("export")
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (atomically); default stdout.",
)
@state_dir_option
def export_cmd(job: Path, fmt: str, out: Path | None, state_dir: Path | None) -> None:
    """Write the job's current results, whatever its sink, as JSONL or CSV."""
    sys.exit(_guard(lambda: commands.export_job(job, fmt, out, state_dir)))


@cli.command("schema")
def schema_cmd() -> None:
    """Print the job file JSON Schema."""
    click.echo(spec.schema_text(), nl=False)


@cli.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML/JSON emulator config: faults, latency, limits, scripted responses.",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file keeping batches and results across restarts (default: in memory).",
)
@click.option("--api-key", help="Accept only this API key (default: any non-empty key).")
def emulator_cmd(
    host: str, port: int, config_file: Path | None, state: Path | None, api_key: str | None
) -> None:
    """Serve a local Message Batches API emulator until interrupted."""
    sys.exit(
        _guard(
            lambda: emulator.serve(config_file, host=host, port=port, api_key=api_key, state=state)
        )
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="batchrun")
