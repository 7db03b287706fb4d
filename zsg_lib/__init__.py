"""zsg_lib — the thin library behind the zsg book.

Data flows ``data`` → ``embed`` → ``similarity`` → ``arrange`` → ``train`` → ``analysis``;
``study`` drives the chain for a profile (``profiles``), ``pages`` shows a chapter's results,
``site`` builds the book and ``cli`` holds the ``zsg`` commands; each stage takes plain inputs (tables, arrays, id
lists) and returns plain outputs. The stages, their modules and each module's job are listed
once, in ``ARCHITECTURE.md`` at the repository root.
"""

from .errors import ArrangementError, DataError, ParamsError, TrainError, ZsgError
from .schema import INSTANCE_SCHEMA, instances_from_records, text_view, to_frame

__version__ = "0.1.0"

__all__ = [
    "INSTANCE_SCHEMA",
    "ArrangementError",
    "DataError",
    "ParamsError",
    "TrainError",
    "ZsgError",
    "__version__",
    "instances_from_records",
    "text_view",
    "to_frame",
]
