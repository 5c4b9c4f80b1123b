"""The job file -> a frozen, typed `JobSpec` (DESIGN.md's spec stage).

The face of the package for the stages above it. Modules inside the package, and the modules
validation itself relies on, import from `runner.spec.model` directly, so that importing the
model never pulls in the loader.
"""

from runner.spec.load import load_job, load_ref
from runner.spec.model import JobRef, JobSpec, Template

__all__ = ["JobRef", "JobSpec", "Template", "load_job", "load_ref"]
