"""This machine's own non-loopback addresses, and whether a port answers on one (connects only to them)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess


def non_loopback_addresses() -> list[str]:
    """This machine's IPv4/IPv6 addresses other than loopback (``hostname -I``)."""
    listing = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout
    found = []
    for text in listing.split():
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not address.is_loopback and not address.is_link_local:
            found.append(str(address))
    return found


def answers(address: str, port: int) -> bool:
    """True when a TCP connection to ``address:port`` is accepted."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        return sock.connect_ex((address, port)) == 0


def websocket_status(port: int, host_header: str, path: str = "/_stcore/stream") -> int:
    """The HTTP status a websocket handshake to 127.0.0.1:``port`` gets when it names ``host_header``."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("ascii"))
        status_line = sock.makefile("rb").readline().decode("latin-1")
    return int(status_line.split()[1])
