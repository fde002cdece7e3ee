"""End-to-end tests of the real service process, with real models, Prometheus and several replicas."""
