"""camctl's HTTP side, written once: the routes every server has (status, health, metrics) and
the per-camera routes, served by `camctl ingest`, by each run-all worker (on its unix socket) and,
relayed, by the run-all front."""
