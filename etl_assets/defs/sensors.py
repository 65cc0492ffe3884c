"""``new_export_sensor``: a file in the inbox becomes a partition and a run, once it stops growing.

The cursor remembers, per file, the size and modification time seen last tick, and
the sha256 of every export already requested. A file is ready when two ticks see the
same size and time. Content already requested (under any name) starts nothing;
changed content is a new partition.
"""


import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ..etl.errors import InvalidExportError
from ..etl.extractor import Extractor
from .assets import export_media, inbox_export, raw_export, skype_tables, transformed_export
from .partitions import EXPORT_SUFFIXES, partition_key_for, skype_exports
from .resources import PipelineSettings

load_skype_export = dg.define_asset_job(
    "load_skype_export",
    selection=dg.AssetSelection.assets(raw_export, transformed_export, skype_tables, export_media),
    description="Raw, transformed and loaded tables for one export partition.",
)


@dataclass
class InboxCursor:
    """What the sensor knows between ticks."""

    pending: dict[str, list] = field(default_factory=dict)  # path -> [size, mtime(, sha256 once hashed)]
    requested: dict[str, str] = field(default_factory=dict)  # sha256 -> partition key

    @classmethod
    def parse(cls, text: str | None) -> "InboxCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(pending=data.get("pending", {}), requested=data.get("requested", {}))

    def dump(self) -> str:
        return json.dumps({"pending": self.pending, "requested": self.requested}, sort_keys=True)


def inbox_files(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(
        p for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(EXPORT_SUFFIXES)
    )


@dg.sensor(
    job=load_skype_export,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches ETL_INBOX; adds a partition and requests its run for each new, complete export.",
)
def new_export_sensor(context: dg.SensorEvaluationContext, pipeline_settings: PipelineSettings) -> dg.SensorResult:
    cursor = InboxCursor.parse(context.cursor)
    next_pending: dict[str, list] = {}
    run_requests: list[dg.RunRequest] = []
    new_keys: list[str] = []
    observations: list[dg.AssetObservation] = []
    for path in inbox_files(Path(pipeline_settings.inbox_dir)):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        seen = [stat.st_size, stat.st_mtime]
        before = cursor.pending.get(str(path))
        if before is None or before[:2] != seen:
            next_pending[str(path)] = seen  # new or still growing: look again next tick
            continue
        if len(before) > 2:
            next_pending[str(path)] = before  # unchanged since it was hashed
            continue
        try:
            sha, _ = Extractor(path).sha256()
        except InvalidExportError as e:
            context.log.warning(f"skipping {path.name}: {e.reason}")
            next_pending[str(path)] = seen
            continue
        next_pending[str(path)] = [*seen, sha]
        if sha in cursor.requested:
            continue
        key = partition_key_for(path.name, sha)
        cursor.requested[sha] = key
        new_keys.append(key)
        run_requests.append(
            dg.RunRequest(
                run_key=key,
                partition_key=key,
                run_config={"ops": {"raw_export": {"config": {"path": str(path)}}}},
                tags={"skype_etl/file": path.name},
            )
        )
        observations.append(
            dg.AssetObservation(
                asset_key=inbox_export.key,
                partition=key,
                metadata={"path": str(path), "bytes": stat.st_size, "sha256": sha},
            )
        )
    cursor.pending = next_pending
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[skype_exports.build_add_request(new_keys)] if new_keys else [],
        asset_events=observations,
        cursor=cursor.dump(),
    )
