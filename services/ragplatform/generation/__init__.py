"""The generation service: streamed, cited answers."""
