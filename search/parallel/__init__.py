"""Many workers on one study: worker processes, their start, liveness, memory, checkpoints and resume."""
