"""Destinations: the Sink protocol, one module per destination, templates and property models."""
