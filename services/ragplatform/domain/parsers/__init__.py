"""One parser per document format; `ragplatform.domain.parsing.parse_document` picks one."""
