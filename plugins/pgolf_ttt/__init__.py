"""pgolf builtin plugin."""
