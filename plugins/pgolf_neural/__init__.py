"""pgolf_neural: the seed record's GPT as a pgolf expert.

- ``config``: ``GPTConfig`` and the ``pr700`` / ``tiny`` presets
- ``model``: the one model definition (scoring, training and test-time training all use it)
- ``scoring``: sliding-window scoring by absolute stream position
- ``expert`` / ``plugin``: the ``neural`` expert and its registration
- ``artifact``: fp32 checkpoints and the int5 artifact; ``train``: the training plugin

Importing the package is cheap; torch is imported by the modules that need it.
"""
