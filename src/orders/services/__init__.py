"""Business use cases: each method is one transaction."""
