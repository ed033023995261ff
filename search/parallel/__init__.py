"""Many workers on one study: worker processes, their start, liveness, memory, checkpoints and resume.

- `plan`: the worker slots `--devices/--workers/--trials-per-device` ask for
- `pool`: the parent that starts one process per slot, watches, restarts and stops them
- `job`: what the parent and a worker pass each other (the job file, the result file, exit status)
- `worker_start`, `worker_preload`: how a worker starts (forked from a forkserver, or fresh)
- `worker`: a worker process (`python -m search.parallel.worker JOB.json`); `worker_trials`: its trials
- `stop_flag`: SIGTERM/Ctrl-C close the current trial; `open_work`: what a dying process must close
- `heartbeat`: who runs a trial, and the reaper of dead ones; `checkpoints`, `resume`: a retry goes on
  from the dead trial's last epoch; `memory`: freed memory back to the system between trials
"""
