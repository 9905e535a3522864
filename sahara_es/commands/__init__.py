"""Command handlers: validate, load the aggregate, append its new events."""
