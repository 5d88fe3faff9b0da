"""The processes the local runner started: pid, log file and exit, one row per job object."""
