"""Backends: one folder per concern, each with an interface (`base.py`) and one module per adapter.

`factory.py` (per concern) picks the adapter from settings. Backends import no gRPC.
"""
