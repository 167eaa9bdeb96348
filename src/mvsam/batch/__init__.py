"""``mvsam batch``: many jobs of any ``--out`` command, as Ray tasks, on one machine or a Ray cluster.

:mod:`~mvsam.batch.jobs` validates a JOBS file into command lines, :mod:`~mvsam.batch.worker` runs one job
inside a task, :mod:`~mvsam.batch.runner` schedules, retries and reports. Ray is the optional ``cluster``
extra and is imported only when a batch runs.
"""

from mvsam.batch.jobs import Job, read_jobs
from mvsam.batch.runner import (
    BatchReport,
    BatchSettings,
    JobStatus,
    RayMissingError,
    run_batch,
    summary_table,
)

__all__ = [
    "BatchReport",
    "BatchSettings",
    "Job",
    "JobStatus",
    "RayMissingError",
    "read_jobs",
    "run_batch",
    "summary_table",
]
