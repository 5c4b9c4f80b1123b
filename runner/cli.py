"""The command line: click parses options, one function does the work, errors map to exit
codes (DESIGN.md): 0 ok, 1 job or input error, 2 misuse, 3 internal error, 4 dead letters,
130 interrupted. No logic lives here beyond that mapping."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson

from runner import commands, log, spec, validate
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
@jobs_argument
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def validate_cmd(jobs: tuple[Path, ...], fmt: str) -> None:
    """Check job files; print every problem as FILE:LINE:COL: $.path: message."""
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
    remote = commands.Remote(emulate, emulator_config)
    sys.exit(_guard(lambda: commands.run_jobs(jobs, no_wait, state_dir, remote)))


@cli.command("status")
@jobs_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@state_dir_option
def status_cmd(jobs: tuple[Path, ...], as_json: bool, state_dir: Path | None) -> None:
    """Batches, request counts, cost so far and dead letters of each job (from its state)."""
    sys.exit(_guard(lambda: commands.status_jobs(jobs, as_json, state_dir)))


@cli.command("cancel")
@jobs_argument
@emulate_option
@state_dir_option
def cancel_cmd(jobs: tuple[Path, ...], emulate: bool, state_dir: Path | None) -> None:
    """Cancel the job's in-flight batches; the next plain run resubmits what was canceled."""
    remote = commands.Remote(emulate)
    sys.exit(_guard(lambda: commands.cancel_jobs(jobs, state_dir, remote)))


@cli.command("recover")
@jobs_argument
@emulate_option
@state_dir_option
def recover_cmd(jobs: tuple[Path, ...], emulate: bool, state_dir: Path | None) -> None:
    """Rebuild a lost state from the API: re-attach every result of the job's requests."""
    remote = commands.Remote(emulate)
    sys.exit(_guard(lambda: commands.recover_jobs(jobs, state_dir, remote)))


@cli.command("schema")
def schema_cmd() -> None:
    """Print the job file JSON Schema."""
    click.echo(spec.schema_text(), nl=False)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="batchrun")
