"""Office Open XML files (.docx, .pptx, .xlsx) are zip archives: check one before a parser opens it.

A small upload can expand enormously (a "zip bomb"). The parsers read every part through
`zipfile`, which never returns more than the size each member declares in the archive's central
directory (a member that lies fails its CRC check instead), so bounding the sum of the declared
sizes bounds what parsing can decompress. The XML parsers underneath (lxml through python-docx,
python-pptx and openpyxl) do not resolve entities.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

from ragplatform.domain.errors import DocumentRejected

#: Most bytes an office document may expand to (all its parts together).
MAX_UNCOMPRESSED_BYTES: Final = 128 * 1024 * 1024
#: Most parts (files inside the zip) an office document may have.
MAX_MEMBERS: Final = 20_000
_MIB = 1024 * 1024


def check_office_zip(data: bytes, filename: str, kind: str, extension: str) -> None:
    """Raise `DocumentRejected` unless `data` is a zip archive within the size bounds.

    `kind` ("Word document") and `extension` (".docx") name the format in the messages.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise DocumentRejected(
            f"{filename!r} is not a readable {kind} ({extension} files are zip archives; this one is "
            "damaged, password-protected or in an older binary format); open it in an office program, "
            f"save it as {extension} without a password, and upload again."
        ) from None
    if len(members) > MAX_MEMBERS:
        raise DocumentRejected(
            f"{filename!r} has {len(members)} parts (at most {MAX_MEMBERS} are accepted); "
            "split it into smaller documents and upload them."
        )
    expanded = sum(member.file_size for member in members)
    if expanded > MAX_UNCOMPRESSED_BYTES:
        raise DocumentRejected(
            f"{filename!r} would expand to {expanded // _MIB} MiB when unpacked (at most "
            f"{MAX_UNCOMPRESSED_BYTES // _MIB} MiB are accepted); remove embedded media or split it, "
            "and upload again."
        )


def damaged(filename: str, kind: str, exc: Exception) -> DocumentRejected:
    """The rejection for a zip that opened but whose contents the parser could not read."""
    return DocumentRejected(
        f"{filename!r} is a damaged {kind} that cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
        "open it in an office program, save it again, and upload the result."
    )
