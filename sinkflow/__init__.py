"""sinkflow: a streaming SQL server whose results flow, row by row and continuously, to other systems."""

__version__ = "0.1.0"
