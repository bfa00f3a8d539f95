"""Running sinks: one pipeline per sink (source offsets → streaming query → destination), with
batching, retries, dead-letter streams, checkpoints, pause/resume and metrics written once for all."""
