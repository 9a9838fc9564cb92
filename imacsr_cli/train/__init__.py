"""The trainer process: `python -m imacsr_cli.train RUN_DIR`. It never imports store, launch or cli."""
