"""``hf-ita`` command groups, one module each (see :mod:`hf_ita_plugin.cli.main`)."""
