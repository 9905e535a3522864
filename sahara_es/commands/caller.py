"""Who is asking: the identity every command and read is checked against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sahara_es.events import Metadata


@dataclass(frozen=True)
class Caller:
    project_id: str
    user: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None
    address: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def can_see(self, doc: dict[str, Any]) -> bool:
        """A project sees its own resources and public ones; admin sees all."""
        return self.is_admin or doc.get("project_id") == self.project_id or bool(
            doc.get("is_public"))

    def owns(self, doc: dict[str, Any]) -> bool:
        """Only the owning project (or admin) changes a resource, public or not."""
        return self.is_admin or doc.get("project_id") == self.project_id

    def metadata(self, *, causation_id: str | None = None) -> Metadata:
        return Metadata(actor=self.user or f"project:{self.project_id}",
                        project_id=self.project_id, correlation_id=self.request_id,
                        causation_id=causation_id, source_address=self.address)


SYSTEM = Caller(project_id="_system", user="sahara-es", roles=frozenset({"admin"}))
"""The service itself (engines recording what they did)."""
