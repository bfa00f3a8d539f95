"""Streams: schemas and Timeplus types, the durable append-only log per stream, ingestion, demo data."""
