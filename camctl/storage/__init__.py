"""What lies on the disk, one module per concern: `layout` (where segments live, scanning the
tree), `files` (safe writes, JSON lines, free space), `retention` (limits, plans, pruning), `spans`
(the motion and mark logs beside the footage), `copy_index` (what the copy elsewhere holds).
A new store takes a module here beside them (the footage's hash chain and its seals); the events
database is a room of its own, `camctl.events`."""
