"""BM25-style sparse vectors: tokenisation of technical text, stable term ids, BM25 weights."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ragplatform.domain.models import SparseVector
from ragplatform.domain.sparse_encoding import (
    Bm25Parameters,
    document_vector,
    query_vector,
    stem,
    term_id,
    term_pairs,
    tokenize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("os.path.join", ["os.path.join", "os", "path", "join"]),
        ("snake_case_name", ["snake_case_name", "snake", "case", "name"]),
        ("camelCaseName", ["camelcasename", "camel", "case", "name"]),
        ("HTTPServer", ["httpserver", "http", "server"]),
        ("--block-size=SIZE", ["block-size", "block", "size", "size"]),
        ("port 8080", ["port", "8080"]),
        ("version 1.4462", ["version", "1.4462", "1", "4462"]),
        ("Gzip GZIP gzip", ["gzip", "gzip", "gzip"]),
    ],
)
def test_identifiers_are_indexed_whole_and_as_their_parts(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_stopwords_and_single_letters_are_dropped_but_digits_kept() -> None:
    assert tokenize("How do I list the files in a directory, option -a or 7?") == [
        "list",
        "file",
        "directory",
        "option",
        "7",
    ]


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("files", "file"),
        ("compresses", "compress"),
        ("running", "run"),
        ("copies", "copi"),
        ("copied", "copi"),
        ("process", "process"),
        ("status", "status"),
        ("analysis", "analysis"),
        ("bus", "bus"),
        ("installed", "install"),
        ("x86", "x86"),
    ],
)
def test_light_stemming(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_term_ids_are_stable_across_processes() -> None:
    # Python's own hash() is salted per process; the term ids must not be.
    code = "from ragplatform.domain.sparse_encoding import term_id; print(term_id('os.path.join'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == term_id("os.path.join")
    assert 0 <= term_id("os.path.join") < 2**32
    assert term_id("gzip") != term_id("bzip2")


def test_query_vector_weights_each_distinct_term_once() -> None:
    vector = query_vector("compress compress files")
    assert sorted(vector.indices) == list(vector.indices) == sorted({term_id("compress"), term_id("file")})
    assert vector.values == (1.0, 1.0)
    assert len(query_vector("the of and")) == 0


def test_document_weights_saturate_with_term_frequency_and_fall_with_length() -> None:
    params = Bm25Parameters(k1=1.2, b=0.75, avg_terms=10)

    def weight(text: str, term: str) -> float:
        vector = document_vector(text, params)
        return dict(zip(vector.indices, vector.values, strict=True))[term_id(term)]

    once, twice, ten = (weight(" ".join(["gzip"] * n + ["other"] * 9), "gzip") for n in (1, 2, 10))
    assert once < twice < ten < params.k1 + 1  # saturates below k1 + 1
    assert twice - once > (ten - twice) / 8  # each further occurrence adds less
    short = weight("gzip archive", "gzip")
    long = weight("gzip archive " + "word " * 40, "gzip")
    assert long < short  # the same single mention counts for less in a longer chunk


def test_empty_text_gives_an_empty_vector() -> None:
    assert len(document_vector("")) == 0
    assert len(document_vector("... !!! the")) == 0


def _weights(vector: SparseVector) -> dict[int, float]:
    return dict(zip(vector.indices, vector.values, strict=True))


def test_adjacent_terms_are_pairs_across_dropped_stopwords() -> None:
    assert term_pairs(tokenize("the size of a file")) == ["size file"]
    assert term_pairs(tokenize("--block-size")) == ["block-size block", "block size"]
    assert term_pairs(tokenize("gzip")) == []


def test_a_chunk_indexes_its_pairs_like_words_without_changing_the_words_weights() -> None:
    params = Bm25Parameters(k1=1.2, b=0.75, avg_terms=10)
    vector = _weights(document_vector("disk usage, disk usage", params))
    # Four words long (pairs do not count in the length), each word and the pair twice.
    norm = params.k1 * (1 - params.b + params.b * 4 / params.avg_terms)
    twice = 2 * (params.k1 + 1) / (2 + norm)
    assert vector[term_id("disk")] == pytest.approx(twice)
    assert vector[term_id("disk usage")] == pytest.approx(twice)
    once = (params.k1 + 1) / (1 + norm)
    assert vector[term_id("usage disk")] == pytest.approx(once)
    assert set(vector) == {term_id(t) for t in ("disk", "usage", "disk usage", "usage disk")}


def test_a_query_asks_for_its_pairs_only_with_a_pair_weight() -> None:
    words = {term_id("disk"), term_id("usage"), term_id("directory")}
    assert set(query_vector("disk usage of a directory").indices) == words  # plain BM25 by default
    weighted = _weights(query_vector("disk usage of a directory", pair_weight=0.5))
    assert weighted == {
        **dict.fromkeys(words, 1.0),
        term_id("disk usage"): 0.5,
        term_id("usage directory"): 0.5,
    }
