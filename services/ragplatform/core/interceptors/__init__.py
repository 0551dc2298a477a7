"""Server interceptors, one per file. Each wraps a whole call (a streamed response included)
in an async context manager, so the same code serves unary and streaming methods."""
