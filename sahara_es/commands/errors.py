"""What a command refuses, by failure domain; the API maps each class to one status code.

::

    CommandError
    ├── Invalid             the request is not acceptable as it stands (400)
    ├── NotVisible          no such resource, or not one the caller may see (404)
    ├── Forbidden           the caller may see it but not do this (403)
    │   └── QuotaExceeded   the project's quota would be exceeded (403); the quota claims
    │                       (``infra.quotas``) raise it too, saying by how much
    └── Conflict            the resource's state forbids it now (409)
        ├── NameInUse       another resource of the kind has the name in the project
        ├── InUse           other resources use it (templates used by clusters...)
        ├── Protected       ``is_protected`` is set
        └── ChangedConcurrently   another write got there first: read again and retry
"""

from __future__ import annotations

from typing import overload


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
    """Granting the request would exceed the project's quota; retrying will not help until
    the project frees something or its limit is raised (``retryable`` is False).

    Raised with a message, or, by the quota claims (``infra.quotas``, whose
    ``QuotaExceeded`` is this class), with what was exceeded: ``project``, ``resource``,
    ``asked``, ``free`` and ``limit`` (each None when raised with a message).
    """

    code = "quota-exceeded"

    @overload
    def __init__(self, message: str, /) -> None: ...

    @overload
    def __init__(self, project: str, resource: str, asked: int, free: int, limit: int, /
                 ) -> None: ...

    def __init__(self, message_or_project: str, resource: str | None = None,
                 asked: int | None = None, free: int | None = None, limit: int | None = None,
                 /) -> None:
        self.project: str | None = None
        self.resource = resource
        self.asked, self.free, self.limit = asked, free, limit
        if resource is None:
            super().__init__(message_or_project)
            return
        self.project = message_or_project
        super().__init__(f"quota exceeded for project {message_or_project}: {resource}"
                         f" {asked} asked, {max(free or 0, 0)} free of a limit of {limit}")


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
