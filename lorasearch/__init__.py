"""lorasearch: find the best LoRA-family adapter for a task.

Data flows task -> model + adapter -> trainer -> result -> study -> tracking; each step lives in
its own subpackage (``training``, ``adapters``, ``search``, ``tracking``, ``spaces``).
"""

from lorasearch.errors import LorasearchError

__version__ = "0.1.0"
__all__ = ["LorasearchError", "__version__"]
