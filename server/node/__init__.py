"""The node's asyncio edges: sockets, flushes, journal and archive files, HTTP, metrics."""
