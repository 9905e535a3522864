"""The nodes' firewall rules, against a stand-in ``iptables`` that keeps its rules in a file:
each rule is added once however often it is asked for, in the order that makes it work
(a user's own addresses before its range's rejection), and goes with its uid."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sahara_es.infra import firewall
from sahara_es.infra.firewall import (
    CHAIN,
    FROM_CHAIN,
    TO_CHAIN,
    FirewallUnavailable,
    NodeFirewall,
)

FAKE = r'''
import json, sys
state_file = sys.argv[1]
args = sys.argv[2:]
while args[0] in ("-w", "-n"):
    args = args[1:]
try:
    chains = json.load(open(state_file))
except FileNotFoundError:
    chains = {"OUTPUT": []}
op, chain, rest = args[0], args[1], args[2:]
def save():
    json.dump(chains, open(state_file, "w"))
if op == "-L":
    sys.exit(0 if chain in chains else 1)
if op == "-N":
    if chain in chains:
        sys.exit("iptables: Chain already exists.")
    chains[chain] = []
    save()
    sys.exit(0)
if chain not in chains:
    sys.exit(f"iptables: No chain/target/match by that name ({chain}).")
rule = " ".join(rest)
if op == "-S":
    print(f"-N {chain}")
    for line in chains[chain]:
        print(f"-A {chain} {line}")
elif op == "-C":
    sys.exit(0 if rule in chains[chain] else 1)
elif op == "-A":
    chains[chain].append(rule)
elif op == "-I":
    chains[chain].insert(int(rest[0]) - 1, " ".join(rest[1:]))
elif op == "-D":
    if rule not in chains[chain]:
        sys.exit("iptables: Bad rule (does a matching rule exist in that chain?).")
    chains[chain].remove(rule)
save()
'''


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "iptables"
    state = tmp_path / "rules.json"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.argv.insert(1, {str(state)!r})\n"
                      + FAKE)
    script.chmod(0o755)
    monkeypatch.setattr(firewall, "LOCK", tmp_path / "firewall.lock")
    return script


def chains(fake: Path) -> dict[str, list[str]]:
    rules: dict[str, list[str]] = json.loads((fake.parent / "rules.json").read_text())
    return rules


def test_rules_are_added_once_and_own_addresses_come_first(fake: Path) -> None:
    wall = NodeFirewall("127.10.0.0/16", iptables=str(fake))
    for _ in range(3):
        wall.ensure_chains()
        wall.close_user(990)
        wall.open_address(990, "127.10.0.5")
        wall.open_address(990, "127.10.0.6")
        wall.close_user(991)
    rules = chains(fake)
    assert rules["OUTPUT"] == [f"-j {CHAIN}"]
    assert rules[CHAIN] == [f"-j {FROM_CHAIN}", f"-j {TO_CHAIN}"]
    to = [rule for rule in rules[TO_CHAIN] if "--uid-owner 990 " in rule]
    assert len(to) == 4 and len(rules[TO_CHAIN]) == 6  # 2 own, range, Cassandra; 991's 2
    assert all("RETURN" in rule for rule in to[:2]) and "-d 127.10.0.0/16" in to[2]
    assert len(rules[FROM_CHAIN]) == 4
    assert len(wall.rules(990)) == 7 and len(wall.rules()) == 10


def test_closing_an_address_and_forgetting_a_uid_leave_nothing_of_it(fake: Path) -> None:
    wall = NodeFirewall("127.10.0.0/16", iptables=str(fake))
    wall.ensure_chains()
    for uid in (990, 991):
        wall.close_user(uid)
        wall.open_address(uid, f"127.10.0.{uid - 980}")
    wall.close_address(990, "127.10.0.10")
    wall.close_address(990, "127.10.0.10")
    assert not any("127.10.0.10/32" in rule for rule in wall.rules())
    assert wall.forget(990) == 3 and wall.rules(990) == []
    assert len(wall.rules(991)) == 5
    assert wall.sweep(lambda uid: uid != 991) == [991] and wall.rules() == []
    assert chains(fake)["OUTPUT"] == [f"-j {CHAIN}"]  # the chains stay


def test_without_iptables_changes_refuse_and_deletions_pass(
        fake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "find_iptables", lambda: None)
    wall = NodeFirewall("127.10.0.0/16")
    with pytest.raises(FirewallUnavailable, match="iptables is not installed"):
        wall.ensure_chains()
    wall.close_address(990, "127.10.0.5")
    assert wall.forget(990) == 0 and wall.sweep(lambda uid: False) == []
    broken = NodeFirewall("127.10.0.0/16", iptables="/bin/false")
    with pytest.raises(FirewallUnavailable, match="cannot be enforced"):
        broken.ensure_chains()
