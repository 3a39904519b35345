"""The cleo commands, one per module: they parse options, call a domain, and print."""
