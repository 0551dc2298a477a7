"""Versioned PostgreSQL schema migrations: NNNN_description.sql, applied in order by
`ragplatform.backends.store.postgres_migrations`. Released files are never edited, only added."""
