"""``python -m archstat`` runs the command line."""

from archstat.cli import run

run()
