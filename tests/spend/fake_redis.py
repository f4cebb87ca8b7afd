"""A hostile Redis on a loopback port, for the spend store's connection: it answers the spend
script (admitted) and what redis-py's other users in a gateway send (PING, SUBSCRIBE, CLIENT…),
or, as `mode` says, answers the script slowly, cuts the connection in the middle of the reply,
sends garbage, or says NOSCRIPT to EVALSHA (and answers EVAL)."""

from __future__ import annotations

import asyncio

import hiredis

from tests.support.raw_http import AsyncioServerThread

ADMITTED = b"*2\r\n:0\r\n:-1\r\n"


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class FakeRedis(AsyncioServerThread):
    name = "fake-redis"

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"  # ok | slow | cut | garbage | noscript
        self.slow_s = 5.0
        self.connections = 0
        self.commands: list[list[bytes]] = []

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def names(self) -> list[bytes]:
        return [command[0].upper() for command in self.commands]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        parser = hiredis.Reader()
        while data := await reader.read(65536):
            parser.feed(data)
            while (command := parser.gets()) is not False:
                assert isinstance(command, list)
                self.commands.append(command)
                if not await self._answer(command, writer):
                    writer.transport.abort()
                    return
                await writer.drain()

    async def _answer(self, command: list[bytes], writer: asyncio.StreamWriter) -> bool:
        """Write the reply; False: the connection is to be cut."""
        name = command[0].upper()
        if name in (b"EVALSHA", b"EVAL"):
            mode = self.mode
            if mode == "slow":
                await asyncio.sleep(self.slow_s)
            elif mode == "cut":
                writer.write(ADMITTED[:7])  # `*2\r\n:0\r` and no more
                await writer.drain()
                return False
            elif mode == "garbage":
                writer.write(b"%%% not RESP %%%\r\n")
                return True
            elif mode == "noscript" and name == b"EVALSHA":
                writer.write(b"-NOSCRIPT No matching script. Please use EVAL.\r\n")
                return True
            writer.write(ADMITTED)
        elif name in (b"SUBSCRIBE", b"PSUBSCRIBE"):
            kind = name.lower()
            for count, channel in enumerate(command[1:], 1):
                writer.write(b"*3\r\n" + _bulk(kind) + _bulk(channel) + b":%d\r\n" % count)
        elif name == b"PING":
            writer.write(b"+PONG\r\n")
        elif name == b"AUTH" and command[-1] != b"secret":
            writer.write(b"-WRONGPASS invalid username-password pair\r\n")
        elif name in (b"AUTH", b"SELECT", b"CLIENT"):
            writer.write(b"+OK\r\n")
        else:
            writer.write(b"$-1\r\n")
        return True
