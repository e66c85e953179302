"""The browser files (the client's source, the demo, the dashboard, the login page),
shipped in the wheel as `livecount_client`; `tag` builds the `<script>` tag from the
client's source."""
