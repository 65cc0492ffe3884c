"""The component classes: plain Python, usable without Dagster."""

import os

# Arrow's default allocator keeps freed memory per thread; the system allocator returns
# it, which keeps a streaming run's resident memory flat. Set before pyarrow is imported;
# an explicit ARROW_DEFAULT_MEMORY_POOL still wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
