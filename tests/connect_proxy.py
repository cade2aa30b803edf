"""An HTTP CONNECT proxy, run as its own process: `python connect_proxy.py HOST`, which prints
the port it listens on. tests/test_launcher.py's nodes are network namespaces with no route
out; pip there reaches the package index through this (PIP_PROXY), as machines behind a
company proxy do, and nothing on the host's own network is changed."""

import asyncio
import sys

from tcp_proxy import pipe  # beside it in tests/: the byte copying both proxies do


async def _handle(client_r, client_w):
    try:
        request = await client_r.readuntil(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if method != "CONNECT":
            client_w.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        server_r, server_w = await asyncio.open_connection(host, int(port))
    except (OSError, ValueError, asyncio.IncompleteReadError):
        client_w.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        client_w.close()
        return
    client_w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))


async def main(host: str) -> None:
    server = await asyncio.start_server(_handle, host, 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
