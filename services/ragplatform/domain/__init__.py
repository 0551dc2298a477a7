"""Domain model and rules: no gRPC, no I/O beyond what callers pass in."""
