"""The retrieval service: the one owner of the vector store."""
