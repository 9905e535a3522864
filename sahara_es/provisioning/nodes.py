"""Which nodes a cluster should have (named ``c<id>-<group>-<n>``) and what the scheduler
is asked to place for them."""

from __future__ import annotations

from sahara_es.engine import TaskContext
from sahara_es.events.resources import Doc
from sahara_es.infra.placement import NodeRequest
from sahara_es.provisioning.services import services


def planned_nodes(doc: Doc, sizes: dict[str, int] | None = None) -> list[Doc]:
    """The nodes each node group should have, named ``c<id>-<group>-<n>``: the existing ones
    first, then new names after the highest number in use."""
    nodes: list[Doc] = []
    for group in doc["node_groups"]:
        existing = sorted((i["instance_name"] for i in group.get("instances", [])),
                          key=node_number)
        wanted = (sizes or {}).get(group["name"], group["count"])
        names = existing[:wanted]
        number = max([node_number(n) for n in existing] + [0])
        while len(names) < wanted:
            number += 1
            names.append(f"c{doc['id'][:8]}-{group['name'].lower()}-{number}")
        for name in names:
            nodes.append({"name": name, "node_group": group["name"],
                          "processes": list(group["node_processes"]),
                          "flavor": group["flavor_id"], "new": name not in existing})
    return nodes


def node_number(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def node_requests(ctx: TaskContext, doc: Doc, nodes: list[Doc]) -> list[NodeRequest]:
    provider = services(ctx).provider
    flavors = provider.flavors()
    spread = set(doc.get("anti_affinity") or [])
    requests = []
    for node in nodes:
        group = next((p for p in node["processes"] if p in spread), None)
        requests.append(NodeRequest(node["name"], flavors[node["flavor"]],
                                    f"{doc['id']}:{group}" if group else None))
    return requests
