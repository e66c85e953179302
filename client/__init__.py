"""The browser files (snippet, demo, dashboard), shipped in the wheel as `livecount_client`."""
