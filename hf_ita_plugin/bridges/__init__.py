"""Bridges to other fine-tuning tools: configs they read, written from a hf-ita :class:`~hf_ita_plugin.config.RunConfig`.

A bridge never imports the other tool (its pinned dependencies cannot share our environment); it
writes the file that tool reads and says what the tool cannot express.
"""

from .autotrain import AutoTrainExport, autotrain_config

__all__ = ["AutoTrainExport", "autotrain_config"]
