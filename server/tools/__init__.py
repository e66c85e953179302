"""Commands around a running livecount: reports in a terminal, the load-test client."""
