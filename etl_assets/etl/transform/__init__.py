"""Transform: records to warehouse rows, written as Parquet parts in resumable chunks."""
