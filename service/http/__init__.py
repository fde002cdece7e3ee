"""The HTTP/JSON face of the service and its web page, served in the gRPC server's process and event loop."""
