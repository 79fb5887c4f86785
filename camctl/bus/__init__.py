"""NATS, one module per concern: `subjects` names every subject and the shape of its payload
(start there), `client` is camctl's connections (a publisher that never blocks, a consumer's
connect that fails in one line), `embedded` the nats-server camctl starts for a box on its own.
Next beside them: the site's link to a hub (leaf node) and its JetStream streams."""
