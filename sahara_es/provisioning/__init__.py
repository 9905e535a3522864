"""Provisioning: the cluster workflows (create, scale, rebuild, delete, force delete, verify,
key pair update) as task graphs
the engine runs, the services their tasks use and the handoff's rules that start them.

Each workflow records what it does in the cluster's own stream (status changes, instances,
provisioning steps with per-node outcomes, health), so the API shows it live; the work is
in tasks whose results say how to undo them. A failed create rolls back: instances deleted,
host and quota claims released, the cluster in ``Error`` with the reason. A failed scale
returns the cluster to its previous size, ``Active``.

The plugin does not do the work: it returns flows (per-node tasks) that these workflows
spawn, each node task wrapped in ``cluster.node-step`` so that its outcome is recorded as
the node's event in the step; a worker node whose step fails is left out (the cluster is
*partially active*, health YELLOW) when the plugin says the cluster can run without it.

Workflow ids follow the cluster: ``create-<id>``, ``scale<version>-<id>``,
``rebuild<version>-<id>``, ``delete-<id>``, ``verify-<verification id>`` (``ids``), so a
request repeated after a crash starts nothing twice; each carries the cluster's project, by
which engines share their slots.

Bounds: every node step runs under the ``step_limits`` service's timeout for its task type
and stops when its workflow is cancelled; either way its remote commands are killed and the
step fails saying so. A delete cancels what provisions the cluster, waits for it at most
``cancel_grace``, then deletes every instance. Deleting is final: nothing creates an
instance or claims a host for a cluster being deleted (a task that was already doing it
undoes its own work when it sees the deletion), reverts leave its status alone, and nothing
is appended to a deleted cluster.
"""

from sahara_es.provisioning import create, delete, keypair, rebuild, scale, verify
from sahara_es.provisioning.create import CREATE
from sahara_es.provisioning.delete import DELETE, FORCE_DELETE
from sahara_es.provisioning.keypair import UPDATE_KEYPAIR
from sahara_es.provisioning.rebuild import REBUILD
from sahara_es.provisioning.scale import SCALE
from sahara_es.provisioning.verify import VERIFY

__all__ = ["CREATE", "DELETE", "FORCE_DELETE", "REBUILD", "SCALE", "UPDATE_KEYPAIR", "VERIFY",
           "create", "delete", "keypair", "rebuild", "scale", "verify"]
