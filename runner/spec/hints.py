"""Words about a job that several commands print: paths as the user would type them (relative
to where they stand), and why a job has no inputs."""

from __future__ import annotations

from pathlib import Path

from runner.spec.model import JobSpec


def shown(path: Path | str) -> str:
    """A path as the user would write it: relative to the working folder when inside it.
    An object storage URL (`s3://...`) is shown as it is."""
    if isinstance(path, str) and "://" in path:
        return path
    target = Path(path)
    try:
        return str(target.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(target)


def input_path(job: JobSpec, relative: str) -> str:
    """An input's path (relative to the job's folder) as seen from the working folder."""
    return shown(job.base_dir / relative)


def no_inputs(job: JobSpec) -> str:
    """Why a job with no requests has none, with the fix."""
    spec = job.input
    if spec.kind == "glob":
        where = shown(job.base_dir) if job.base_dir != Path.cwd() else "."
        return (
            f"no inputs: no file matches {spec.pattern!r} (relative to {where}); add files "
            "there or fix input.glob"
        )
    source = shown(spec.path) if spec.path is not None else f"the {spec.kind} file"
    return f"no inputs: {source} has no records"
