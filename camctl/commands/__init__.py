"""One module per subcommand; each a plain function returning a typed result."""
