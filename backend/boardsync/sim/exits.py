"""Exit identities as the upstream sees them: one loopback source address per proxy exit.

A real proxy's exit IP is the peer address the upstream reads, through a plain forward and
through a ``CONNECT`` tunnel alike. The simulator's gateway does the same on loopback: each
issued IP (and each tunnel rotation) gets its own ``127.x.y.z`` source address, which the
gateway binds its outgoing socket to, and the upstream maps the peer address back to the
exit's public-looking name (``58.x.y.z``). A direct client is known by its own address.

Linux routes all of ``127.0.0.0/8`` to loopback; where binding such an address fails (macOS
configures only 127.0.0.1) :func:`aliases_supported` says so, every exit then leaves from
127.0.0.1 and the upstream sees one identity (the simulator logs a warning: per-IP limits
cannot be told apart there; ``sudo ifconfig lo0 alias 127.20.1.1`` ... would restore them).
"""

from __future__ import annotations

import socket
import threading

#: Second octet of the addresses handed to exits (127.20.0.1, 127.20.0.2, ...).
FIRST = 20
SPAN = 250  # third and fourth octets run 1..250


def address_of(index: int) -> str:
    """The ``index``-th exit address: 0 -> 127.20.1.1, 249 -> 127.20.1.250, 250 -> 127.20.2.1."""
    second, rest = divmod(index, SPAN * SPAN)
    third, fourth = divmod(rest, SPAN)
    return f"127.{FIRST + second}.{third + 1}.{fourth + 1}"


def aliases_supported() -> bool:
    """True when a socket can bind a loopback address other than 127.0.0.1."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((address_of(0), 0))
    except OSError:
        return False
    finally:
        sock.close()
    return True


class Exits:
    """Two-way map between exit names and their loopback source addresses (thread-safe)."""

    def __init__(self, aliases: bool = True) -> None:
        self.aliases = aliases
        self._lock = threading.Lock()
        self._address: dict[str, str] = {}
        self._name: dict[str, str] = {}

    def address_for(self, name: str) -> str:
        """The source address of exit ``name`` (allocated on first use, then stable)."""
        if not self.aliases:
            return "127.0.0.1"
        with self._lock:
            address = self._address.get(name)
            if address is None:
                address = address_of(len(self._address))
                self._address[name] = address
                self._name[address] = name
            return address

    def name_of(self, peer: str) -> str:
        """The exit behind peer address ``peer``; a direct client is its own address."""
        with self._lock:
            return self._name.get(peer, peer)
