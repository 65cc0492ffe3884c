"""An IO manager for handles: small JSON documents, never message data, under a path or URL."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
from pydantic import Field
from upath import UPath

from etl_assets.etl.pipeline import RawHandle, TransformedHandle

_HANDLE_TYPES: dict[str, type] = {cls.__name__: cls for cls in (RawHandle, TransformedHandle)}


class _JsonHandleIOManager(dg.UPathIOManager):
    extension = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        kind = type(obj).__name__
        if kind not in _HANDLE_TYPES:
            raise TypeError(f"the handle IO manager stores only handles, not {kind}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"type": kind, "value": obj.to_json()}, indent=1))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        document = json.loads(path.read_text())
        return _HANDLE_TYPES[document["type"]](**document["value"])


class HandleIOManager(dg.ConfigurableIOManagerFactory):
    """Stores each partition's handle as ``<root>/<asset key>/<partition>.json``."""

    root: str = Field(description="Local path or fsspec URL (s3://, gs://, ...).")

    def create_io_manager(self, context: dg.InitResourceContext) -> _JsonHandleIOManager:
        return _JsonHandleIOManager(base_path=UPath(self.root))
