"""The REST API (Timeplus v1beta2 shapes), live query results over SSE, metrics, and the console."""
