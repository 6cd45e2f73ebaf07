"""The socket `virtnet api` shares among several workers: connections accepted on it get
TCP_NODELAY (uvicorn's own bind left it off, and every keep-alive request then waited for
the client's delayed ACK, ~40 ms: Kludex/uvicorn#3149)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.cli.server import _tcp_listener


def accepted_nodelay(sock: socket.socket) -> int:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def handle(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(seen, 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return value

    return asyncio.run(main())


def test_connections_on_the_shared_socket_get_tcp_nodelay() -> None:
    sock = _tcp_listener("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()
    assert accepted_nodelay(sock) != 0


def test_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped:
            _tcp_listener("127.0.0.1", port)
    assert str(stopped.value).startswith(f"virtnet: cannot listen on 127.0.0.1:{port}: ")
