"""The official MCP Python SDK client for the tool-cache e2e test: connects through the
gateway in one era (`legacy`: initialize + Mcp-Session-Id; `2026-07-28`: no handshake,
Mcp-Method/Mcp-Name headers; `auto`: server/discover then whichever the server speaks), lists
the tools, calls each of them twice and prints what came back as JSON (one object).

    python tool_client.py URL MODE AUTHORIZATION
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def main() -> None:
    url, mode, authorization = sys.argv[1], sys.argv[2], sys.argv[3]
    http = httpx2.AsyncClient(headers={"authorization": authorization}, timeout=20)
    transport = streamable_http_client(url, http_client=http)
    out = {"calls": {}}
    # cache=None: the SDK's own result cache would hide what the gateway does.
    async with Client(transport, mode=mode, cache=None) as client:
        out["protocol_version"] = client.protocol_version
        tools = await client.list_tools()
        out["tools"] = sorted(t.name for t in tools.tools)
        calls = [
            ("list-pods", {"namespace": "default"}),
            ("kubectl-apply", {"manifest": "web.yaml"}),
            ("kubectl-get", {"resource": "deploy/web"}),
            ("list-services", {"namespace": "default"}),
        ]
        for name, arguments in calls:
            results = []
            for _ in range(2):
                result = await client.call_tool(name, arguments)
                results.append({"text": text_of(result), "is_error": bool(result.is_error)})
            out["calls"][name] = results
    await http.aclose()
    print(json.dumps(out))


asyncio.run(main())
