"""A real MCP client (the official Python SDK) driven line by line, for the gateway's tests.

    client.py stdio COMMAND [ARG...]      launch the gateway (or any MCP server) and speak stdio
    client.py http URL [BEARER_KEY]       connect over streamable HTTP

Reads one JSON command per line on stdin and writes one JSON event per line on stdout:

    {"op": "list"}                                     -> {"op": "list", "tools": [{"name", "annotations"}]}
    {"op": "call", "tag": T, "tool": N, "args": {...}} -> {"tag": T, "progress": P, "total": N, "message": M} while
                                                          it waits or runs,
                                                          then {"tag": T, "result": {"is_error", "text", "meta"}}
                                                          or {"tag": T, "error": "..."} for a protocol error
    {"op": "cancel", "tag": T}                         -> {"tag": T, "cancelled": true}
    {"op": "quit"}

Calls run concurrently, so a test can approve a waiting call, or cancel it, while the client waits.
"""

import json
import sys

import anyio
import httpx2
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def call(session, tag, tool, args, scope_holder):
    async def on_progress(progress, total, message):
        emit({"tag": tag, "progress": progress, "total": total, "message": message})

    with anyio.CancelScope() as scope:
        scope_holder[tag] = scope
        try:
            r = await session.call_tool(tool, args, progress_callback=on_progress)
        except Exception as e:  # a protocol error: the test checks its text
            emit({"tag": tag, "error": str(e)})
            return
        text = "\n".join(getattr(c, "text", "") for c in r.content)
        meta = r.meta if getattr(r, "meta", None) is not None else None
        emit({"tag": tag, "result": {"is_error": bool(r.is_error), "text": text, "meta": meta}})
    if scope.cancelled_caught:
        emit({"tag": tag, "cancelled": True})


async def drive(session):
    scopes = {}
    async with anyio.create_task_group() as tg:
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "quit":
                break
            if op == "list":
                tools = (await session.list_tools()).tools
                emit({"op": "list", "tools": [
                    {"name": t.name, "annotations": t.annotations.model_dump(exclude_none=True) if t.annotations else {}}
                    for t in tools
                ]})
            elif op == "call":
                tg.start_soon(call, session, cmd["tag"], cmd["tool"], cmd.get("args", {}), scopes)
            elif op == "cancel":
                scopes[cmd["tag"]].cancel()
        tg.cancel_scope.cancel()


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                emit({"op": "ready"})
                await drive(session)
    elif mode == "http":
        headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else {}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
            async with streamable_http_client(sys.argv[2], http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    emit({"op": "ready"})
                    await drive(session)
    else:
        raise SystemExit(f"unknown mode {mode}: stdio or http")


if __name__ == "__main__":
    anyio.run(main)
