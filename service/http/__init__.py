"""The service's plain HTTP endpoints."""
