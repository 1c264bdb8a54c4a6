"""Proofs: a compressed file decoded back to the stream by a process that cannot reach the data.

- ``plan``: what the decoder may read (and the code that is counted);
- ``landlock``, ``seccomp``: how it is kept to that;
- ``sandbox``: the decoder's process, spawned fresh, confined before any plugin is imported;
- ``score``: the score computed from the file and the decoded tokens, without any plugin;
- ``description``: every byte the decoder needed, for the description length;
- ``prove``: the round trip and its verdict, as ``eval --prove`` and ``decompress`` run it.
"""
