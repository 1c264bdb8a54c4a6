"""Registration hooks (filled in by the plugin)."""
