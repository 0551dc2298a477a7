"""A third corpus for `bench/retrieval_quality.py --corpus pgdoc`: prose documentation, the
PostgreSQL 15 manual as Debian's `postgresql-doc-15` package ships it (DocBook-generated HTML, one
page per section), ingested as HTML through the platform's own parser.

The project wrote none of it, and its style differs from the other two corpora (task-oriented
prose with examples, not reference entries). The pages are those of the tutorial, the SQL
language, server administration and PL/pgSQL chapters (`PAGES`; the SQL command and client
application reference pages, which read like manual pages, are left out). Each page's markup is
cut where its visible text reaches `MAX_TEXT_CHARS` characters (the questions in
bench/retrieval_questions_pgdoc.tsv were written against the cut pages), which keeps the corpus
near 1,000 chunks; the cut pages are written to bench/results/pgdoc/ (`<page>.html`), which is
also the directory to `ragplatform ingest` for the end-to-end check. Install the pages with
`apt-get install postgresql-doc-15`; without them the corpus is empty and the bench says so.
"""

from __future__ import annotations

from pathlib import Path

from bench.html_pages import cut_pages
from bench.manpage_corpus import RESULTS

SOURCE = Path("/usr/share/doc/postgresql-doc-15/html")
PGDOC_DIR = RESULTS / "pgdoc"
MAX_TEXT_CHARS = 8_000

PAGES = [
    "applevel-consistency", "arrays", "auth-bsd", "auth-cert", "auth-delay", "auth-ident", "auth-ldap",
    "auth-methods", "auth-pam", "auth-password", "auth-peer", "auth-pg-hba-conf", "auth-radius", "auth-trust",
    "auth-username-maps", "backup-dump", "backup-file", "backup-manifest-files", "backup-manifest-format",
    "backup-manifest-toplevel", "backup-manifest-wal-ranges", "backup", "charset", "client-authentication-problems",
    "client-authentication", "collation", "continuous-archiving", "creating-cluster", "database-roles",
    "datatype-binary", "datatype-bit", "datatype-boolean", "datatype-character", "datatype-datetime",
    "datatype-enum", "datatype-geometric", "datatype-json", "datatype-money", "datatype-net-types",
    "datatype-numeric", "datatype-oid", "datatype-pg-lsn", "datatype-pseudo", "datatype-textsearch", "datatype-uuid",
    "datatype-xml", "datatype", "ddl-alter", "ddl-basics", "ddl-constraints", "ddl-default", "ddl-depend",
    "ddl-foreign-data", "ddl-generated-columns", "ddl-inherit", "ddl-others", "ddl-partitioning", "ddl-priv",
    "ddl-rowsecurity", "ddl-schemas", "ddl-system-columns", "ddl", "dml-delete", "dml-insert", "dml-returning",
    "dml-update", "dml", "explicit-locking", "high-availability", "hot-standby", "indexes-bitmap-scans",
    "indexes-collations", "indexes-examine", "indexes-expressional", "indexes-index-only-scans", "indexes-intro",
    "indexes-multicolumn", "indexes-opclass", "indexes-ordering", "indexes-partial", "indexes-types",
    "indexes-unique", "indexes", "kernel-resources", "locale", "logical-replication-architecture",
    "logical-replication-col-lists", "logical-replication-config", "logical-replication-conflicts",
    "logical-replication-monitoring", "logical-replication-publication", "logical-replication-quick-setup",
    "logical-replication-restrictions", "logical-replication-row-filter", "logical-replication-security",
    "logical-replication-subscription", "logical-replication", "maintenance", "manage-ag-config",
    "manage-ag-createdb", "manage-ag-dropdb", "manage-ag-overview", "manage-ag-tablespaces", "manage-ag-templatedbs",
    "monitoring-locks", "monitoring-ps", "monitoring-stats", "monitoring", "multibyte", "mvcc-caveats", "mvcc-intro",
    "mvcc-serialization-failure-handling", "mvcc", "performance-tips", "planner-stats-details",
    "planner-stats-security", "planner-stats", "plpgsql-control-structures", "plpgsql-cursors",
    "plpgsql-declarations", "plpgsql-development-tips", "plpgsql-errors-and-messages", "plpgsql-expressions",
    "plpgsql-implementation", "plpgsql-overview", "plpgsql-porting", "plpgsql-statements", "plpgsql-structure",
    "plpgsql-transactions", "plpgsql-trigger", "plpgsql", "populate", "queries-limit", "queries-order",
    "queries-overview", "queries-select-lists", "queries-table-expressions", "queries-union", "queries-values",
    "queries-with", "queries", "rangetypes", "role-attributes", "role-membership", "role-removal", "routine-reindex",
    "routine-vacuuming", "rules-materializedviews", "rules-privileges", "rules-status", "rules-triggers",
    "rules-update", "rules-views", "rules", "runtime-config-autovacuum", "runtime-config-client",
    "runtime-config-compatible", "runtime-config-connection", "runtime-config-custom", "runtime-config-developer",
    "runtime-config-error-handling", "runtime-config-file-locations", "runtime-config-locks",
    "runtime-config-logging", "runtime-config-preset", "runtime-config-query", "runtime-config-replication",
    "runtime-config-resource", "runtime-config-short", "runtime-config-statistics", "runtime-config-wal",
    "runtime-config", "runtime", "server-shutdown", "server-start", "ssl-tcp", "textsearch-configuration",
    "textsearch-controls", "textsearch-debugging", "textsearch-dictionaries", "textsearch-features",
    "textsearch-indexes", "textsearch-intro", "textsearch-limitations", "textsearch-parsers", "textsearch-psql",
    "textsearch-tables", "textsearch", "transaction-iso", "trigger-definition", "triggers", "tutorial-accessdb",
    "tutorial-advanced-intro", "tutorial-advanced", "tutorial-agg", "tutorial-arch", "tutorial-concepts",
    "tutorial-conclusion", "tutorial-createdb", "tutorial-delete", "tutorial-fk", "tutorial-inheritance",
    "tutorial-install", "tutorial-join", "tutorial-populate", "tutorial-select", "tutorial-sql-intro",
    "tutorial-sql", "tutorial-start", "tutorial-table", "tutorial-transactions", "tutorial-update", "tutorial-views",
    "tutorial-window", "tutorial", "typeconv-func", "typeconv-oper", "typeconv-overview", "typeconv-query",
    "typeconv-select", "typeconv-union-case", "typeconv", "upgrading", "user-manag", "using-explain",
    "wal-async-commit", "wal-configuration", "wal-internals", "wal-intro", "wal-reliability", "wal",
    "warm-standby-failover", "warm-standby",
]  # fmt: skip


def pgdoc_corpus() -> dict[str, str]:
    """file name (`<page>.html`) -> cut markup, cutting pages not cached yet."""
    return cut_pages(SOURCE, PAGES, PGDOC_DIR, MAX_TEXT_CHARS)
