"""`python -m orders` runs the command line."""

from orders.cli import main

main()
