"""Command-line interface (Typer). Parse, call the library, render; nothing else."""
