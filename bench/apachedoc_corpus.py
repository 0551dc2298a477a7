"""A fifth corpus for `bench/retrieval_quality.py --corpus apachedoc`: prose documentation the
project never looked at while building or tuning the pipeline, the Apache HTTP Server 2.4 manual
as Debian's `apache2-doc` package ships it (the httpd.apache.org documentation, HTML, English
pages under /usr/share/doc/apache2-doc/manual/en), ingested as HTML through the platform's own
parser.

Pages, by a rule fixed before any question was written: every page of the English manual, in
every directory, whose markup says it is English (`<html lang="en">`: the package ships six
Portuguese pages under `en/`, e.g. `bind.html`), except those in `EXCLUDED`, which are not
documentation of running the server or are generated lists: the directory index pages and the
site map; the generated directive index, quick reference and override-class index; the licence;
the change lists (`new_features_*`); the module developers' API notes (`developer/`, about
writing C modules, not using the server); and the pages that only say their content moved
(the FAQ, three deprecated mod_rewrite pages, "Other Programs"). What remains (205 pages) is the
how-to guides, the module and MPM references, the server's programs, the mod_rewrite, SSL/TLS
and virtual-host guides, and the platform notes. Each page's markup is cut where its visible
text reaches `MAX_TEXT_CHARS` characters (as bench/pgdoc_corpus.py does; the questions in
bench/retrieval_questions_apachedoc.tsv were written against the cut pages). The cut pages go to
bench/results/apachedoc/ (`mod/mod_rewrite` as `mod-mod_rewrite.html`), which is also the
directory to `ragplatform ingest` for the end-to-end check. Install the pages with
`apt-get install apache2-doc`; without them the corpus is empty and the bench says so.
"""

from __future__ import annotations

from pathlib import Path

from bench.html_pages import cut_pages
from bench.manpage_corpus import RESULTS

SOURCE = Path("/usr/share/doc/apache2-doc/manual/en")
APACHEDOC_DIR = RESULTS / "apachedoc"
MAX_TEXT_CHARS = 8_000
_ENGLISH = b'<html lang="en"'

EXCLUDED = {
    # directory indexes, the site map and generated lists of directives
    "index", "sitemap", "howto/index", "misc/index", "mod/index", "platform/index", "programs/index",
    "rewrite/index", "ssl/index", "vhosts/index", "mod/directives", "mod/quickreference", "mod/overrides",
    # the licence and the change lists
    "license", "new_features_2_0", "new_features_2_2", "new_features_2_4",
    # pages that only say where their content went
    "faq/index", "rewrite/access", "rewrite/advanced", "rewrite/proxy", "programs/other",
}  # fmt: skip
EXCLUDED_DIRECTORIES = {"developer"}


def apachedoc_pages() -> list[str]:
    """The pages the rule keeps, as paths under `SOURCE` without `.html`, sorted."""
    pages = []
    for path in SOURCE.rglob("*.html"):
        page = path.relative_to(SOURCE).with_suffix("").as_posix()
        if page in EXCLUDED or path.parent.name in EXCLUDED_DIRECTORIES:
            continue
        if _ENGLISH in path.read_bytes()[:2_000]:
            pages.append(page)
    return sorted(pages)


def apachedoc_corpus() -> dict[str, str]:
    """file name (`<page>.html`, slashes made dashes) -> cut markup, cutting pages not cached yet."""
    return cut_pages(SOURCE, apachedoc_pages(), APACHEDOC_DIR, MAX_TEXT_CHARS)
