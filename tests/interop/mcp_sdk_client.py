"""An outside MCP client for Axon's /mcp: the official `mcp` Python SDK (PyPI, pinned in
scripts/setup.sh) over Streamable HTTP. Prints one JSON line per step for the Rust test.

usage: mcp_sdk_client.py URL TOKEN TOOL ARGS_JSON
"""

import asyncio
import json
import sys

from mcp import ClientSession, MCPError, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def say(**kw):
    print(json.dumps(kw), flush=True)


async def main(url, token, tool, args):
    headers = {"Authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                say(step="initialize", protocol=init.protocol_version, server=init.server_info.name,
                    list_changed=bool(init.capabilities.tools and init.capabilities.tools.list_changed))
                # Every page, following nextCursor (the Hub pages the aggregated list).
                tools, pages, cursor = [], 0, None
                while True:
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    listed = await session.list_tools(params=params)
                    tools.extend(listed.tools)
                    pages += 1
                    cursor = listed.next_cursor
                    if not cursor or pages > 1000:
                        break
                say(step="list", names=[t.name for t in tools], pages=pages,
                    titles={t.name: t.title for t in tools})
                result = await session.call_tool(tool, args)
                say(step="call", is_error=result.is_error,
                    structured=result.structured_content,
                    text=[c.text for c in result.content if getattr(c, "text", None)])
                # Invalid arguments are a JSON-RPC error (-32602 with the field), which the
                # SDK raises.
                try:
                    bad = await session.call_tool(tool, {"on": "yes"})
                    say(step="bad_call", is_error=bad.is_error, code=None,
                        text=[c.text for c in bad.content if getattr(c, "text", None)])
                except MCPError as e:
                    say(step="bad_call", is_error=True, code=e.error.code, text=[e.error.message],
                        data=e.error.data)


if __name__ == "__main__":
    url, token, tool, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    try:
        asyncio.run(main(url, token, tool, args))
    except BaseException as e:  # report, let the test decide
        say(step="error", error=repr(e))
        sys.exit(1)
