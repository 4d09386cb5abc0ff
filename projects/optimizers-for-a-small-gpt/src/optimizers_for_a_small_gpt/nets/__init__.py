"""Network architectures shared by the problem families. Each takes the input shape and the
number of outputs first, then its own size arguments (the `net_args` of a config)."""
