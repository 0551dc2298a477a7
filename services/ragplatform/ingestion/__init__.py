"""The ingestion service (uploads, documents, jobs) and the queue-fed ingestion worker."""
