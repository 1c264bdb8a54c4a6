"""``python -m pgolf_core`` (and ``torchrun -m pgolf_core``) runs the ``pgolf-core`` CLI."""

from .cli import main

if __name__ == "__main__":
    main()
