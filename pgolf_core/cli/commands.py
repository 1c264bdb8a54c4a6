"""The engine's own subcommands (audit, compress, decompress), registered through the same
``pgolf_register_commands`` hook a third-party plugin uses (entry point ``core-commands``)."""

from __future__ import annotations

from ..hookspecs import hookimpl


@hookimpl
def pgolf_register_commands(cli) -> None:
    from .audit import audit_command
    from .compress import compress_command, decompress_command

    for command in (audit_command, compress_command, decompress_command):
        cli.add_command(command)
