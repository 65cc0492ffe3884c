"""``new_export_sensor``: a file in the inbox becomes a partition and a run, once it stops growing.

The cursor remembers, per file, its size, modification time (ns), inode and device as
seen last tick, and the fingerprint of every export already requested. A file is ready
when two ticks see it unchanged. Then it is fingerprinted (its size and first and last
MiB, ``etl/extract/fingerprint.py``): never the whole file, and no more than
``PipelineSettings.sensor_bytes_per_tick`` bytes in one tick, so any amount of data
arriving at once is taken in over several ticks, each well within the sensor's time
limit. Content already requested (under any name), already published, or already a
partition (a backfill's, one added by hand) starts nothing; changed content is a new
partition. The full sha256 is computed by ``raw_export``, on the read that copies
the file.
"""


import json
from dataclasses import dataclass, field

import dagster as dg

from etl_assets.etl.extract.fingerprint import content_fingerprint, read_cost

from ..partitions import partition_key_for, published_partitions, skype_exports
from ..resources import PipelineSettings
from .assets import inbox_export
from .inbox import identity_now, inbox_files


@dataclass
class InboxCursor:
    """What the sensor knows between ticks."""

    # path -> {"stat": [size, mtime_ns, inode, device], "fingerprint": hex once read}
    pending: dict[str, dict] = field(default_factory=dict)
    requested: dict[str, str] = field(default_factory=dict)  # fingerprint -> partition key

    @classmethod
    def parse(cls, text: str | None) -> "InboxCursor":
        if not text:
            return cls()
        data = json.loads(text)
        # Entries of older cursors (lists) are looked at again, as files seen for the first time.
        pending = {p: v for p, v in data.get("pending", {}).items() if isinstance(v, dict)}
        return cls(pending=pending, requested=data.get("requested", {}))

    def dump(self) -> str:
        return json.dumps({"pending": self.pending, "requested": self.requested}, sort_keys=True)


@dg.sensor(
    job_name="load_skype_export",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches ETL_INBOX; adds a partition and requests its run for each new, complete export.",
)
def new_export_sensor(context: dg.SensorEvaluationContext, pipeline_settings: PipelineSettings) -> dg.SensorResult:
    cursor = InboxCursor.parse(context.cursor)
    next_pending: dict[str, dict] = {}
    run_requests: list[dg.RunRequest] = []
    new_keys: list[str] = []
    observations: list[dg.AssetObservation] = []
    budget = pipeline_settings.sensor_bytes_per_tick
    spent = deferred = 0
    published: set[str] | None = None  # asked once per tick, when a new file needs it
    known: set[str] = set()
    for path, identity in inbox_files(pipeline_settings.inbox_dir):
        before = cursor.pending.get(str(path))
        if before is None or before.get("stat") != identity:
            next_pending[str(path)] = {"stat": identity}  # new or still changing: look again next tick
            continue
        if "fingerprint" in before:
            next_pending[str(path)] = before  # unchanged since it was fingerprinted
            continue
        if spent and spent + read_cost(identity[0]) > budget:
            next_pending[str(path)] = before  # this tick's reading is spent: next tick
            deferred += 1
            continue
        try:
            seen = content_fingerprint(path)
            after = identity_now(path)
        except FileNotFoundError:
            continue  # removed since the listing
        except OSError as e:
            context.log.warning(f"skipping {path.name} for now: cannot be read ({e.strerror})")
            continue
        spent += seen.bytes_read
        if after != identity:
            next_pending[str(path)] = {"stat": after}  # changed while it was read
            continue
        next_pending[str(path)] = {"stat": identity, "fingerprint": seen.digest}
        if seen.size == 0 or seen.container == "unknown":
            context.log.warning(f"skipping {path.name}: not a Skype export (.tar, .tar.gz, .zip or messages.json)")
            continue
        if seen.digest in cursor.requested:
            continue
        key = partition_key_for(path.name, seen.digest)
        cursor.requested[seen.digest] = key
        if published is None:
            published = published_partitions(context.instance)
            known = set(context.instance.get_dynamic_partitions(skype_exports.name))
        if key in published:  # loaded already (the demo, a backfill): nothing to run
            context.log.info(f"{path.name}: already published as partition {key}")
            continue
        if key in known:  # a backfill's, or added by hand: whoever added it runs it
            context.log.info(f"{path.name}: partition {key} exists already; not requesting a second run")
            continue
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
                metadata={"path": str(path), "bytes": seen.size, "fingerprint": seen.digest},
            )
        )
    if deferred:
        context.log.info(f"read {spent} bytes this tick; {deferred} file(s) left for the next ticks")
    cursor.pending = next_pending
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[skype_exports.build_add_request(new_keys)] if new_keys else [],
        asset_events=observations,
        cursor=cursor.dump(),
    )
