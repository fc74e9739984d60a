#!/usr/bin/env python3
"""Relays one TCP connection between a client and a server on loopback, recording what the
server sent (its whole byte stream: S0, S1, S2, then the chunk stream) to a file. Used to make
the rtmp_* fuzz seeds from real servers; see README.md.

Usage: record_server.py LISTEN_PORT SERVER_PORT OUT_FILE [TIMEOUT_S]
Handles exactly one connection, then exits; gives up after TIMEOUT_S (default 30) seconds.
"""
import selectors
import socket
import sys
import time


def main():
    listen_port, server_port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    deadline = time.monotonic() + timeout
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(1)
    lsock.settimeout(timeout)
    client, _ = lsock.accept()
    server = socket.create_connection(("127.0.0.1", server_port), timeout=5)
    recorded = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, server)
    sel.register(server, selectors.EVENT_READ, client)
    open_sides = 2
    while open_sides and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            data = key.fileobj.recv(65536)
            if key.fileobj is server:
                recorded += data
            if not data:
                sel.unregister(key.fileobj)
                open_sides -= 1
                try:
                    key.data.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            key.data.sendall(data)
    with open(out_path, "wb") as f:
        f.write(recorded)
    print(f"recorded {len(recorded)} bytes from the server")


if __name__ == "__main__":
    main()
