"""Set-up plumbing run by `make setup` and `make lock`; not part of the plugin."""
