"""The gRPC face of the service: the servicer, authentication, request parsing, request ids and call accounting."""
