"""What a command refuses, by failure domain; the API maps each class to one status code.

::

    CommandError
    ├── Invalid             the request is not acceptable as it stands (400)
    ├── NotVisible          no such resource, or not one the caller may see (404)
    ├── Forbidden           the caller may see it but not do this (403)
    │   └── QuotaExceeded   the project's quota would be exceeded (403)
    └── Conflict            the resource's state forbids it now (409)
        ├── NameInUse       another resource of the kind has the name in the project
        ├── InUse           other resources use it (templates used by clusters...)
        ├── Protected       ``is_protected`` is set
        └── ChangedConcurrently   another write got there first: read again and retry
"""

from __future__ import annotations


class CommandError(Exception):
    code: str = "command-error"
    """A stable, machine-readable name for the error (API-SIG ``code``)."""
    retryable: bool = False
    """A refusal: the same command is refused again, except after a concurrent change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(CommandError):
    code = "invalid"


class NotVisible(CommandError):
    code = "not-found"


class Forbidden(CommandError):
    code = "forbidden"


class QuotaExceeded(Forbidden):
    code = "quota-exceeded"


class Conflict(CommandError):
    code = "conflict"


class NameInUse(Conflict):
    code = "name-in-use"


class InUse(Conflict):
    code = "in-use"


class Protected(Conflict):
    code = "protected"


class ChangedConcurrently(Conflict):
    code = "changed-concurrently"
    retryable = True
