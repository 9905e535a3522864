"""A region's address pool is region-local (doc/regions.rst): the local provider of a region
reserves each node's loopback address as a region-local claim of one unit
(``address_claim_key``, LOCAL_SERIAL), on the real three-datacenter Cassandra
(``tools/cassandra-regions``), each test in the session's keyspace emptied for it.

- Providers of one region racing for a small pool never give one address twice; what does
  not fit is ``CapacityExhausted``; a deleted instance's address is free again.
- Another region's process can neither reserve nor free a region's addresses
  (``ForeignRegion``): the address stays its holder's.

One site (no region) keeps addresses as global unique names: tests/integration/
test_local_infra.py.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sahara_es.infra import InstanceSpec, LocalProvider
from sahara_es.infra.base import CapacityExhausted
from sahara_es.infra.local import address_claim_key
from sahara_es.store import ForeignRegion, Store

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]


@pytest.fixture
def address_range() -> str:
    """Eight addresses (six usable) of their own, outside the range other tests' nodes use."""
    block = random.randrange(256 * 32)
    base = ipaddress.IPv4Address("127.77.0.0") + 8 * block
    return f"{base}/29"


@pytest.fixture
def providers(stores: dict[str, Store], nodes_root: Path,
              address_range: str) -> Iterator[list[LocalProvider]]:
    """Three providers of dc1 on dc1's store, sharing one instances folder; no firewall
    (its rules are another test's subject). Every instance goes afterwards, half-made ones
    (a refused address) included."""
    made = [LocalProvider(stores["dc1"], root=nodes_root / "infra", stop_grace=1.0,
                          address_range=address_range, network_isolation=False, region="dc1")
            for _ in range(3)]
    yield made
    folders = nodes_root / "infra" / "instances"
    for folder in sorted(folders.iterdir()) if folders.is_dir() else []:
        made[0].delete_instance(folder.name)


def spec(name: str, public_key: str) -> InstanceSpec:
    return InstanceSpec(name=name, flavor="local.small", public_key=public_key,
                        metadata={"cluster": "addresses"})


def test_providers_of_one_region_racing_for_its_pool_never_give_an_address_twice(
        providers: list[LocalProvider], stores: dict[str, Store],
        keypair: tuple[str, str]) -> None:
    names = [f"addr-{n}" for n in range(8)]  # eight nodes race for six addresses

    def create(n: int) -> str | None:
        try:
            return providers[n % 3].create_instance(spec(names[n], keypair[1])).address
        except CapacityExhausted:
            return None

    with ThreadPoolExecutor(8) as pool:
        given = list(pool.map(create, range(8)))
    addresses = [a for a in given if a is not None]
    assert len(addresses) == 6 and len(set(addresses)) == 6  # all used, none twice
    for name, address in zip(names, given, strict=True):
        if address is not None:
            claim = stores["dc1"].get_claim(address_claim_key("dc1", address))
            assert claim.holders == {name: 1}

    freed = addresses[0]
    holder = names[given.index(freed)]
    providers[1].delete_instance(holder)
    assert stores["dc1"].get_claim(address_claim_key("dc1", freed)).holders == {}
    late = names[given.index(None)]
    assert providers[2].create_instance(spec(late, keypair[1])).address == freed


def test_another_region_can_neither_take_nor_free_a_regions_address(
        providers: list[LocalProvider], stores: dict[str, Store], nodes_root: Path,
        address_range: str, keypair: tuple[str, str]) -> None:
    address = providers[0].create_instance(spec("addr-mine", keypair[1])).address
    key = address_claim_key("dc1", address)
    with pytest.raises(ForeignRegion):  # dc2's store cannot claim dc1's address
        stores["dc2"].claim_with_retry(key, "addr-theirs", 1)
    in_dc2 = LocalProvider(stores["dc2"], root=nodes_root / "infra", stop_grace=1.0,
                           address_range=address_range, network_isolation=False,
                           region="dc1")  # misconfigured: dc1's pool from a dc2 process
    with pytest.raises(ForeignRegion):
        in_dc2.create_instance(spec("addr-theirs", keypair[1]))
    with pytest.raises(ForeignRegion):  # an engine of dc2 cannot free it either
        LocalProvider(stores["dc2"], root=nodes_root / "infra", stop_grace=1.0,
                      address_range=address_range, network_isolation=False,
                      region="dc2").delete_instance("addr-mine")
    assert stores["dc1"].get_claim(key).holders == {"addr-mine": 1}  # still dc1's node's
