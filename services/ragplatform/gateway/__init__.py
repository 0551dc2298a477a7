"""The gateway: the one public gRPC entry point (API keys, rate limits, the answer cache)."""
