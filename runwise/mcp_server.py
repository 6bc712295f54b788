"""Launch line older configs use: `python -m runwise.mcp_server` starts the stdio MCP server."""

import sys

from runwise.server import main

if __name__ == "__main__":
    sys.exit(main())
