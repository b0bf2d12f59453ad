"""Italian data: loading any supported source into canonical conversations (and, later, cleaning)."""

from .loaders import FORMATS, bundled_data_path, detect_format, load_conversations, load_rows, to_messages

__all__ = ["FORMATS", "bundled_data_path", "detect_format", "load_conversations", "load_rows", "to_messages"]
