"""`convtune`: the command line, its progress display and diagnostics log; each command in `commands/`."""
