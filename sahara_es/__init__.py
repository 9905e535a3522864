"""sahara-es: an event-sourced data-processing cluster service."""

__version__ = "0.1.0"
