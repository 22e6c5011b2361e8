"""The service's problems, each under the core error it specialises (`core.errors`)."""
