"""Tests of the gRPC translation service."""
