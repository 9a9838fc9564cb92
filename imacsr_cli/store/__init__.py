"""The results database: SQLAlchemy models, schema migrations and the Store API.

``from imacsr_cli.store import Store`` — see store.py for the API and the modules it is built from.
Nothing in this package imports torch; pandas is imported only by the query methods.
"""

from imacsr_cli.store.claims import NotOwner, final_metrics
from imacsr_cli.store.engine import DEFAULT_URL, default_url
from imacsr_cli.rundir.codes import REASONS
from imacsr_cli.store.models import SCHEMA_VERSION, STATES
from imacsr_cli.store.queries import RunRecord
from imacsr_cli.store.store import Store

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
