"""Italian data: load any supported source into canonical conversations, clean, deduplicate,
order as a curriculum, generate synthetic Q&A from a taxonomy, and report what was done.

Modules, in pipeline order: :mod:`.loaders` and :mod:`.taxonomy` (sources), :mod:`.cleaning`
(with :mod:`.language`), :mod:`.dedup` (:mod:`.words` finds words once for both), :mod:`.curriculum`,
:mod:`.report`, :mod:`.prepare` (the whole pipeline, ``hf-ita data prepare``) and
:mod:`.generate` (``hf-ita data generate``).
"""

from .loaders import (
    FORMATS,
    SOURCE_FORMATS,
    Example,
    InvalidRow,
    LoadedData,
    bundled_data_path,
    detect_format,
    load_conversations,
    load_examples,
    load_rows,
    seeded_sample,
    to_messages,
)

__all__ = [
    "FORMATS",
    "SOURCE_FORMATS",
    "Example",
    "InvalidRow",
    "LoadedData",
    "bundled_data_path",
    "detect_format",
    "load_conversations",
    "load_examples",
    "load_rows",
    "seeded_sample",
    "to_messages",
]
