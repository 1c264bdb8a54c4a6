"""The codec: the range coder (``rangecoder``), coding a run's distributions (``coding``, and the
compiled loop in ``compiled``), the file format (``container``, ``coderformat``) and
``compress``/``decompress``."""
