"""What the CLI commands do, above the spine: each reaches into pipeline, compress and report; nothing imports them but the CLI."""
