"""The command line: click parses options, one function of `runner.commands` does the work,
errors map to exit codes (`errors.ExitCode`). No logic lives here beyond that mapping.

Each command imports its module when it runs, so starting the CLI loads only what the
command needs (`status` never loads the render stack, nothing but `emulator` the emulator).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from runner import log
from runner.errors import BatchrunError, ExitCode, Terminated


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
    """Run one command body, turning expected errors into messages and exit codes. SIGTERM
    (Kubernetes, `docker stop`) stops it as Ctrl-C does, with exit 143."""
    previous = _on_sigterm(_terminate)
    try:
        return fn()
    except BatchrunError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Terminated:
        click.echo(
            "terminated (SIGTERM): stopped cleanly, state is saved; run again to go on", err=True
        )
        return ExitCode.TERMINATED
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the state is saved; run the same command again to resume", err=True
        )
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`batchrun export JOB | head`): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:
        from runner import faults  # a full disk, a damaged state...: worded, not a bug

        known = faults.explain(exc)
        if known is not None:
            click.echo(f"error: {known}", err=True)
            return known.exit_code
        log.get("batchrun").exception("internal error: this is a bug in batchrun, please report it")
        return ExitCode.INTERNAL
    finally:
        _on_sigterm(previous)


def _terminate(signum: int, frame: object) -> None:
    _on_sigterm(signal.SIG_IGN)  # a second SIGTERM must not cut the unwinding short
    raise Terminated


def _on_sigterm(handler: Any) -> Any:
    """Install `handler` for SIGTERM; returns the previous one. Only the main thread may
    (a library caller's worker thread keeps the handlers it has)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler) if handler is not None else None


jobs_argument = click.argument(
    "jobs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)


EXIT_CODES = """\b
Exit codes:
  0    every input has a result (with --no-wait: the pass succeeded)
  1    a job or input error, reported with the file, the place and the fix
  2    command-line misuse
  3    an internal error (a bug: the traceback is logged)
  4    finished, but some requests ended in dead letters
  130  interrupted (the state is saved: run again to resume)"""


@click.group(
    cls=DefaultRunGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)
@click.version_option(package_name="batchrun-cli", prog_name="batchrun")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "console", "json"]),
    default="auto",
    show_default=True,
    help="Log renderer: console on a terminal and JSON lines otherwise by default.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe log lines shown.",
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
    from runner.commands import validate

    sys.exit(_guard(lambda: validate.main(jobs, fmt)))


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each job's state in DIR/<job name>/ instead of .batchrun/ beside the job file.",
)
emulate_option = click.option(
    "--emulate",
    is_flag=True,
    help="Use an in-process emulator for this command only (its batches vanish after); "
    "state and outputs go to a scratch copy whose path the run prints, never the job's own.",
)
emulator_config_option = click.option(
    "--emulator-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Fault and latency config for --emulate.",
)


def _duration_option(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from runner.backend.reach import duration

    seconds = duration(value.strip())
    if seconds is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 5m or 1h")
    return seconds


@cli.command("run")
@jobs_argument
@click.option("--no-wait", is_flag=True, help="Do one reconcile pass and exit (cron/CI mode).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run report as JSON on stdout: per job finished or not, counts, what was "
    "submitted, cost so far, dead letters.",
)
@emulate_option
@state_dir_option
@emulator_config_option
@click.option(
    "--unreachable-timeout",
    metavar="DURATION",
    callback=_duration_option,
    help="How long to retry an API that cannot be reached before exiting 1 "
    "(default 5m, or BATCHRUN_UNREACHABLE_TIMEOUT).",
)
def run_cmd(
    jobs: tuple[Path, ...],
    no_wait: bool,
    as_json: bool,
    emulate: bool,
    state_dir: Path | None,
    emulator_config: Path | None,
    unreachable_timeout: float | None,
) -> None:
    """Submit what is missing, collect what ended, retry what failed; until done."""
    if emulate and no_wait:
        raise click.UsageError(
            "--no-wait with --emulate leaves nothing to come back to: the emulator and its "
            "batches end with this command. Drop --no-wait, or start `batchrun emulator` "
            "and point ANTHROPIC_BASE_URL at it."
        )
    from runner.commands import run, wiring

    remote = wiring.Remote(emulate, emulator_config, unreachable_timeout=unreachable_timeout)
    log_format = click.get_current_context().find_root().params.get("log_format", "auto")
    sys.exit(
        _guard(
            lambda: run.run_jobs(
                jobs, no_wait, state_dir, remote, as_json=as_json, log_format=log_format
            )
        )
    )


@cli.command("status")
@jobs_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@state_dir_option
def status_cmd(jobs: tuple[Path, ...], as_json: bool, state_dir: Path | None) -> None:
    """Batches, request counts, cost so far and dead letters of each job (from its state)."""
    from runner.commands import status

    sys.exit(_guard(lambda: status.status_jobs(jobs, as_json, state_dir)))


# cancel and recover act on batches a previous command made, so they have no --emulate:
# an emulator started for them would hold none of those batches.
@cli.command("cancel")
@jobs_argument
@state_dir_option
def cancel_cmd(jobs: tuple[Path, ...], state_dir: Path | None) -> None:
    """Cancel the job's in-flight batches; the next plain run resubmits what was canceled."""
    from runner.commands import cancel, wiring

    sys.exit(_guard(lambda: cancel.cancel_jobs(jobs, state_dir, wiring.Remote())))


@cli.command("recover")
@jobs_argument
@state_dir_option
def recover_cmd(jobs: tuple[Path, ...], state_dir: Path | None) -> None:
    """Rebuild a lost state from the API: re-attach every result of the job's requests."""
    from runner.commands import recover, wiring

    sys.exit(_guard(lambda: recover.recover_jobs(jobs, state_dir, wiring.Remote())))


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
    from runner.commands import compile as compile_

    sys.exit(_guard(lambda: compile_.main(job, out_dir)))


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
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save the plan to this file, for `batchrun apply`.",
)
def plan_cmd(
    jobs: tuple[Path, ...],
    as_json: bool,
    count_tokens: bool,
    state_dir: Path | None,
    emulate: bool,
    out: Path | None,
) -> None:
    """Show what a run would submit, with estimated tokens and cost; exit 1 over budget."""
    from runner.commands import plan

    sys.exit(_guard(lambda: plan.plan_jobs(jobs, as_json, count_tokens, state_dir, emulate, out)))


@cli.command("apply")
@click.argument("plan_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-wait", is_flag=True, help="Do one reconcile pass and exit (cron/CI mode).")
@emulate_option
@state_dir_option
@emulator_config_option
def apply_cmd(
    plan_file: Path,
    no_wait: bool,
    emulate: bool,
    state_dir: Path | None,
    emulator_config: Path | None,
) -> None:
    """Submit exactly what a saved plan lists, then carry on like run; refused if stale."""
    if emulate and no_wait:
        raise click.UsageError(
            "--no-wait with --emulate leaves nothing to come back to: the emulator and its "
            "batches end with this command. Drop --no-wait."
        )
    from runner.commands import apply, wiring

    remote = wiring.Remote(emulate, emulator_config)
    sys.exit(_guard(lambda: apply.apply_plan(plan_file, no_wait, state_dir, remote)))


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
@click.option(
    "--raw",
    is_flag=True,
    help="CSV: keep cells as they are (by default a cell starting with = + - @ gets a "
    "leading ' so that spreadsheets do not run it as a formula).",
)
@state_dir_option
def export_cmd(job: Path, fmt: str, out: Path | None, raw: bool, state_dir: Path | None) -> None:
    """Write the job's current results, whatever its sink, as JSONL or CSV."""
    from runner.commands import export

    sys.exit(_guard(lambda: export.export_job(job, fmt, out, state_dir, raw=raw)))


@cli.command("verify")
@click.argument("job", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--repair", is_flag=True, help="Rewrite what drifted from the state (atomically).")
@state_dir_option
def verify_cmd(job: Path, repair: bool, state_dir: Path | None) -> None:
    """Compare the sink with the job's state: missing, duplicated, altered, unparsable and
    foreign entries, each with its place. Exit 1 if anything drifted (0 once repaired)."""
    from runner.commands import verify

    sys.exit(_guard(lambda: verify.verify_job(job, repair, state_dir)))


@cli.command("schema")
def schema_cmd() -> None:
    """Print the job file JSON Schema."""
    from runner.spec import schema

    click.echo(schema.schema_text(), nl=False)


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
    from runner import emulator

    sys.exit(
        _guard(
            lambda: emulator.serve(config_file, host=host, port=port, api_key=api_key, state=state)
        )
    )


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="batchrun")
