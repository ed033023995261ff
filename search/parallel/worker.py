"""One worker process of a pool: `python -m search.parallel.worker JOB.json`, or forked from the forkserver.

`convtune tune` starts one per slot (`search.parallel.worker_start`). The worker installs its stop
flag first, then imports the libraries and runs its trials (`search.parallel.worker_trials`); on an
interrupt or a crash it closes what it had open, so that no trial or run stays RUNNING, and says so
in its exit status (`search.parallel.job`).
"""

from __future__ import annotations

import logging
import os
import sys

from search.parallel import open_work
from search.parallel.job import EXIT_INTERRUPTED, WorkerJob, write_result
from search.parallel.stop_flag import StopFlag


def run_job(job: WorkerJob) -> int:
    """The body of a worker process: its study, its device, its trials; the exit status."""
    stop = StopFlag()
    with stop.installed():  # before the slow imports: a SIGTERM during start-up is a clean stop too
        try:
            # lazy: importing the trial loop (torch, Lightning, MLflow, Optuna) takes ~4 s in a fresh
            # worker on 2 cores; the stop flag is installed first so that a SIGTERM then stops it cleanly
            from search.parallel.worker_trials import run_trials

            return run_trials(job, stop)
        except (KeyboardInterrupt, SystemExit):
            open_work.close_all("the worker was interrupted")
            write_result(job, {"ran": 0, "failed": 0, "stopped_by": "interrupted"})
            return EXIT_INTERRUPTED
        except Exception as error:  # the traceback goes to the worker's log; its trial is not left RUNNING
            open_work.close_all(f"worker {os.getpid()} crashed: {type(error).__name__}: {error}"[:500])
            raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        usage = "usage: python -m search.parallel.worker JOB.json (started by `convtune tune`)"
        print(usage, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    return run_job(WorkerJob.read(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
