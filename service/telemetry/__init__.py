"""What the service tells about itself: Prometheus metrics and their HTTP server, build information, logs."""
