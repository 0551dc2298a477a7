"""A sixth corpus for `bench/retrieval_quality.py --corpus djangodoc`: developer documentation of
a web framework, which the project never looked at while building or tuning the pipeline: the
Django 3.2 documentation as Debian's `python-django-doc` package ships it (the docs.djangoproject.com
pages built by Sphinx, HTML, under /usr/share/doc/python-django-doc/html), ingested as HTML
through the platform's own parser. Unlike the other five sets (manual pages, pydoc text, the
PostgreSQL and SQLite manuals, the Apache manual) it documents a library for writing
applications: tutorials, topic guides, how-tos and the API reference.

Pages, by a rule fixed before any question was written: every page in the directories of the
documentation a developer reads to use Django (`faq`, `howto`, `intro`, `misc`, `ref`, `topics`,
at any depth) and the glossary, except those in `EXCLUDED`: the pages that are only a table of
contents (a list of links under a sentence or two: the directory indexes such as `ref/index`,
`ref/models/index`, `topics/http/index`, and the two that only point elsewhere,
`topics/http/generic-views` and `ref/contrib/gis/utils`) and the two about contributing to Django
itself (`intro/contributing`, `faq/contributing`). Left out whole: the release notes
(`releases/`, change lists), Django's own project documentation (`internals/`: contributing,
triage, release process), the highlighted source listings (`_modules/`) and the generated or
navigation pages at the top (`index`, `contents`, `genindex`, `py-modindex`, `search`). What
remains (218 pages) is the tutorials, the FAQ, the how-to guides, the topic guides and the API
reference (models and querysets, forms, templates, views, the contrib apps including GeoDjango
and django.contrib.postgres, settings, django-admin). Each page's markup is cut where its
visible text reaches `MAX_TEXT_CHARS` characters, as for the other HTML sets (the questions in
bench/retrieval_questions_djangodoc.tsv were written against the cut pages). The cut pages go to
bench/results/djangodoc/ (`ref/models/querysets` as `ref-models-querysets.html`), which is also
the directory to `ragplatform ingest` for the end-to-end check. Install the pages with
`apt-get install python-django-doc`; without them the corpus is empty and the bench says so.
"""

from __future__ import annotations

from pathlib import Path

from bench.html_pages import cut_pages
from bench.manpage_corpus import RESULTS

SOURCE = Path("/usr/share/doc/python-django-doc/html")
DJANGODOC_DIR = RESULTS / "djangodoc"
MAX_TEXT_CHARS = 8_000
INCLUDED_DIRECTORIES = {"faq", "howto", "intro", "misc", "ref", "topics"}
INCLUDED_TOP_PAGES = {"glossary"}

EXCLUDED = {
    # tables of contents: a list of links under a sentence or two
    "faq/index", "howto/index", "intro/index", "misc/index", "ref/index", "topics/index",
    "ref/models/index", "ref/files/index", "ref/forms/index", "ref/templates/index",
    "ref/class-based-views/index", "ref/class-based-views/mixins", "topics/db/index",
    "topics/db/examples/index", "topics/http/index",
    # pages that only point elsewhere
    "topics/http/generic-views", "ref/contrib/gis/utils",
    # contributing to Django itself, not using it
    "intro/contributing", "faq/contributing",
}  # fmt: skip


def djangodoc_pages() -> list[str]:
    """The pages the rule keeps, as paths under `SOURCE` without `.html`, sorted."""
    pages = []
    for path in SOURCE.rglob("*.html"):
        page = path.relative_to(SOURCE).with_suffix("").as_posix()
        top = page.split("/", 1)[0]
        kept = top in INCLUDED_DIRECTORIES if "/" in page else page in INCLUDED_TOP_PAGES
        if kept and page not in EXCLUDED:
            pages.append(page)
    return sorted(pages)


def djangodoc_corpus() -> dict[str, str]:
    """file name (`<page>.html`, slashes made dashes) -> cut markup, cutting pages not cached yet."""
    return cut_pages(SOURCE, djangodoc_pages(), DJANGODOC_DIR, MAX_TEXT_CHARS)
