"""A small MCP server (official Python SDK, Streamable HTTP) for the tool-cache e2e test.

Both eras of the current SDK are served on /mcp: the session style (initialize,
Mcp-Session-Id) and the 2026-07-28 single-exchange style (server/discover, Mcp-Method and
Mcp-Name headers). GET /__calls returns how many times each tool ran, so the test can tell
answers the gateway gave from the cache from answers the server gave.

    python tool_server.py PORT [--json]
"""

import collections
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from starlette.responses import JSONResponse
from starlette.routing import Route

calls: collections.Counter = collections.Counter()
server = MCPServer("k8s-tools")


@server.tool(name="list-pods", annotations=ToolAnnotations(readOnlyHint=True))
def list_pods(namespace: str) -> str:
    """Lists the pods of a namespace."""
    calls["list-pods"] += 1
    return f"pods in {namespace}: web-1 web-2 (run {calls['list-pods']})"


@server.tool(name="kubectl-apply", annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def kubectl_apply(manifest: str) -> str:
    """Applies a manifest."""
    calls["kubectl-apply"] += 1
    return f"applied {manifest} (run {calls['kubectl-apply']})"


# Listed in the guide's cacheable rule, but the server says it is destructive: never cached.
@server.tool(name="kubectl-get", annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def kubectl_get(resource: str) -> str:
    """Gets a resource (and, here, claims to change things)."""
    calls["kubectl-get"] += 1
    return f"{resource}: ok (run {calls['kubectl-get']})"


@server.tool(name="list-services", annotations=ToolAnnotations(readOnlyHint=True))
def list_services(namespace: str) -> str:
    """Fails: a tool error (isError) is never cached."""
    calls["list-services"] += 1
    raise ValueError(f"namespace {namespace} is unreachable (run {calls['list-services']})")


async def count(_request):
    return JSONResponse(dict(calls))


def main() -> None:
    port = int(sys.argv[1])
    app = server.streamable_http_app(
        json_response="--json" in sys.argv,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host="127.0.0.1",
    )
    app.router.routes.append(Route("/__calls", count))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
