"""livecount: a self-hosted realtime page-view counter for blogs."""
