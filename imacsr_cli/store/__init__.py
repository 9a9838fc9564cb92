"""The results database: SQLAlchemy models, schema migrations and the Store API.

``from imacsr_cli.store import Store`` — see store.py for the API and its concurrency model. Nothing in
this package imports torch; pandas is imported only by the query methods.
"""

from imacsr_cli.store.models import REASONS, SCHEMA_VERSION, STATES
from imacsr_cli.store.store import DEFAULT_URL, NotOwner, RunRecord, Store, default_url, final_metrics

__all__ = [
    "DEFAULT_URL",
    "NotOwner",
    "REASONS",
    "RunRecord",
    "SCHEMA_VERSION",
    "STATES",
    "Store",
    "default_url",
    "final_metrics",
]
