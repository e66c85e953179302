"""The pure core: messages, counting, subscriptions, copy rules. No I/O, no asyncio, no AWS SDK."""
