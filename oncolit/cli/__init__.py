"""The `oncolit` command line: one module per command group."""
