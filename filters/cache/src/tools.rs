//! The MCP tool-result cache.
