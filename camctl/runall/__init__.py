"""`camctl run-all`: one worker process per camera, supervised (supervisor.py), behind one HTTP
front (front.py)."""

from camctl.runall.supervisor import camctl_argv, run_supervised

__all__ = ["camctl_argv", "run_supervised"]
