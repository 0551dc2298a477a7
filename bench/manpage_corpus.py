"""The corpus of `bench/retrieval_quality.py`: manual pages of packages installed on this machine,
rendered to plain text with `man` (groff) at bench time and cached in bench/results/manpages/.

The project wrote none of it. Each page is cut to its first `MAX_CHARS` characters (the
questions in bench/retrieval_questions.tsv were written against those) to keep the corpus near
1,300 chunks, which the local MiniLM embeds in a few minutes on two cores. A page missing on a
machine is skipped, and so are the questions that expect it (the bench says how many).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PAGES_DIR = RESULTS / "manpages"
MAX_CHARS = 12_000

# The pages the questions expect, plus neighbours that compete with them (gzip/bzip2/xz/zstd/lz4,
# kill/pkill/killall, nice/renice/ionice, the git commands, ...).
PAGES = [
    "ls",
    "cp",
    "mv",
    "rm",
    "du",
    "df",
    "chmod",
    "chown",
    "ln",
    "head",
    "tail",
    "sort",
    "uniq",
    "wc",
    "cut",
    "tr",
    "tee",
    "split",
    "join",
    "paste",
    "comm",
    "seq",
    "date",
    "touch",
    "mkdir",
    "stat",
    "basename",
    "env",
    "nohup",
    "timeout",
    "sleep",
    "md5sum",
    "sha256sum",
    "base64",
    "shuf",
    "nl",
    "fold",
    "fmt",
    "od",
    "tac",
    "realpath",
    "readlink",
    "truncate",
    "dd",
    "id",
    "uname",
    "nproc",
    "printf",
    "expr",
    "numfmt",
    "csplit",
    "expand",
    "install",
    "mktemp",
    "shred",
    "factor",
    "find",
    "xargs",
    "grep",
    "sed",
    "awk",
    "tar",
    "gzip",
    "bzip2",
    "xz",
    "zip",
    "unzip",
    "curl",
    "wget",
    "ssh",
    "scp",
    "git-commit",
    "git-rebase",
    "git-stash",
    "git-bisect",
    "git-cherry-pick",
    "git-log",
    "git-reset",
    "git-worktree",
    "make",
    "diff",
    "patch",
    "cmp",
    "less",
    "ps",
    "top",
    "free",
    "kill",
    "pkill",
    "pgrep",
    "watch",
    "uptime",
    "lsof",
    "strace",
    "useradd",
    "passwd",
    "su",
    "mount",
    "lsblk",
    "ip",
    "ss",
    "journalctl",
    "systemctl",
    "apt-get",
    "apt-cache",
    "dpkg",
    "dpkg-query",
    "file",
    "which",
    "ldd",
    "nm",
    "objdump",
    "strip",
    "readelf",
    "jq",
    "sqlite3",
    "psql",
    "redis-cli",
    "gpg",
    "openssl",
    "envsubst",
    "iconv",
    "locale",
    "bc",
    "column",
    "hexdump",
    "xxd",
    "chattr",
    "flock",
    "setsid",
    "nice",
    "renice",
    "ionice",
    "taskset",
    "getent",
    "logger",
    "cmake",
    "valgrind",
    "tmux",
    "ssh-keygen",
    "pg_dump",
    "createdb",
    "zstd",
    "lz4",
    "vmstat",
    "dmesg",
    "lscpu",
    "blkid",
    "findmnt",
    "fuser",
    "killall",
    "pstree",
    "runuser",
    "chroot",
    "unshare",
    "nsenter",
    "zcat",
    "zgrep",
    "ctags",
    "ninja",
    "pkg-config",
]


def _page_file(name: str) -> str | None:
    """`du.1.txt` for `du` (section taken from where man finds the page), or None if absent."""
    found = subprocess.run(["man", "-w", name], capture_output=True, text=True, check=False)
    if found.returncode != 0 or not found.stdout.strip():
        return None
    base = Path(found.stdout.split()[0]).name.removesuffix(".gz")
    return f"{base}.txt"


def _render(name: str) -> str:
    env = {**os.environ, "MANWIDTH": "90", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    page = subprocess.run(["man", "-P", "cat", name], capture_output=True, env=env, check=False)
    plain = subprocess.run(["col", "-bx"], input=page.stdout, capture_output=True, check=True)
    return plain.stdout.decode("utf-8", "replace")[:MAX_CHARS]


def manpage_corpus() -> dict[str, str]:
    """file name -> text, rendering pages not cached yet. A name that is another page's alias
    (`pkill` is documented in `pgrep.1`, `zcat` in `gzip.1`) gives that page, once."""
    PAGES_DIR.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, str] = {}
    for name in PAGES:
        filename = _page_file(name)
        if filename is None or filename in corpus:
            continue
        cached = PAGES_DIR / filename
        if not cached.is_file():
            text = _render(name)
            if not text.strip():
                continue
            cached.write_text(text)
        corpus[filename] = cached.read_text()
    return corpus
