"""The real load job run by ``execute_job`` in a persistent instance, for the re-execution test.

``python -m etl_assets_tests.reexecute_job INSTANCE_DIR EXPORT`` launches a run of
``load_skype_export`` for the export's partition, its steps in this process (so a crash
point kills the run itself mid-step). ``... INSTANCE_DIR EXPORT --from-failure`` finds that
run in the instance, marks it failed if it is still "started" with its process gone (what
the code server does for a run worker that died), and re-executes it from its failure.
Prints the run's id, status, parent, the steps it executed and how many transform parts it
resumed as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg

from etl_assets.definitions import build_definitions
from etl_assets.defs.partitions import partition_key_for, skype_exports
from etl_assets.etl.extract.fingerprint import content_fingerprint
from etl_assets.etl.config import load_config

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def load_job() -> dg.JobDefinition:
    return build_definitions(load_config()).resolve_job_def("load_skype_export")


def main(instance_dir: str, export: str, mode: str = "--first") -> int:
    path = Path(export)
    key = partition_key_for(path.name, content_fingerprint(path).digest)
    Path(instance_dir).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(tempdir=instance_dir) as instance:
        instance.add_dynamic_partitions(skype_exports.name, [key])
        job = dg.reconstructable(load_job)
        tags = {"dagster/partition": key}
        parent_status = None
        if mode == "--first":
            config = {**IN_PROCESS, "ops": {"raw_export": {"config": {"path": str(path)}}}}
            result = dg.execute_job(job, instance, tags=tags, run_config=config, raise_on_error=False)
        else:
            (parent,) = instance.get_runs()
            parent_status = parent.status.value
            if parent.status == dg.DagsterRunStatus.STARTED:
                instance.report_run_failed(parent)  # its process is gone: nothing will finish it
            options = dg.ReexecutionOptions.from_failure(parent.run_id, instance)
            result = dg.execute_job(job, instance, reexecution_options=options, tags=tags, run_config=IN_PROCESS,
                                    raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        steps = sorted({e.step_key for e in result.all_events if e.is_step_start})
        errors = [e.step_failure_data.error.message.strip()[:500] for e in result.all_events if e.is_step_failure]
        resumed = [m.materialization.metadata["resumed_parts"].value for m in result.get_asset_materialization_events()
                   if m.asset_key == dg.AssetKey("transformed_export")]
        print(json.dumps({"run_id": run.run_id, "status": run.status.value, "parent": run.parent_run_id,
                          "parent_status": parent_status, "steps": steps, "errors": errors,
                          "transform_resumed_parts": resumed[0] if resumed else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
