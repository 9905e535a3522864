"""What the SSH layer lets out of a command: redacted text, bounded tails, key pairs."""

from __future__ import annotations

import pytest

from sahara_es.infra.ssh import (
    REDACTED,
    TAIL_BYTES,
    CommandsFailed,
    ConnectFailed,
    Node,
    RemoteCommandFailed,
    generate_keypair,
    load_private_key,
    parse_host_key,
    redact,
    shell_exports,
    tail,
)

NODE = Node("127.10.0.1", 2222, "sahara", "ssh-ed25519 AAAA", "n1")


def test_every_secret_is_redacted_the_longest_first() -> None:
    text = "user=admin password=hunter2hunter2 token=hunter2"
    assert redact(text, ["hunter2", "hunter2hunter2", ""]) == (
        f"user=admin password={REDACTED} token={REDACTED}")


def test_a_tail_is_the_end_of_the_output_redacted_before_it_is_cut() -> None:
    secret = "x-secret-token"
    output = ("a" * 10_000 + secret).encode()
    # Cutting first would leave "secret-token" visible at the start of the tail.
    assert tail(output, [secret], size=20) == "a" * 17 + REDACTED
    assert len(tail(b"b" * 10_000, [])) == TAIL_BYTES
    assert tail(b"\xff ok", []) == "\ufffd ok"  # undecodable bytes never raise


def test_a_failure_records_the_exit_code_and_tails_for_an_event() -> None:
    failure = RemoteCommandFailed(NODE, "start-dfs.sh", 2, "out", "namenode refused")
    assert failure.to_dict() == {"node": "n1", "command": "start-dfs.sh", "exit_code": 2,
                                 "stdout_tail": "out", "stderr_tail": "namenode refused"}
    assert "exited with 2: namenode refused" in str(failure)
    assert not failure.retryable


def test_many_failures_are_retryable_only_when_each_is() -> None:
    other = Node("127.10.0.2", 2222, "sahara", "ssh-ed25519 AAAA", "n2")
    assert CommandsFailed({NODE: ConnectFailed("down")}, {}).retryable
    assert not CommandsFailed({NODE: ConnectFailed("down"),
                               other: RemoteCommandFailed(other, "x", 1, "", "")}, {}).retryable


def test_environment_is_exported_quoted_for_the_whole_command_line() -> None:
    assert shell_exports({"A": "it's", "B": "$HOME"}) == (
        "export A='it'\"'\"'s'; export B='$HOME'; ")
    with pytest.raises(ValueError):
        shell_exports({"A; rm -rf /": "x"})


def test_a_generated_key_pair_loads_back_into_paramiko() -> None:
    private, public = generate_keypair("cluster-c1")
    kind, blob, comment = public.split()
    assert (kind, comment) == ("ssh-ed25519", "cluster-c1")
    key = load_private_key(private)
    assert key.get_base64() == blob
    assert parse_host_key(public).get_base64() == blob
    assert generate_keypair()[0] != private
