"""Embedding tables as Parquet files: an `embedding` column of fixed-size float32 lists,
and what produced them (checkpoint, step, modality spec, ...) as JSON in the schema's
metadata.

    write_embeddings(table, "test.parquet", metadata=encoder.describe())
    table, z, metadata = read_embeddings("test.parquet")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ahms_fm.jsonable import default as json_default

METADATA_KEY = b"ahms_fm"  # the Parquet schema metadata entry holding our JSON


def embedding_matrix(table, column: str = "embedding") -> np.ndarray:
    """The embedding column of a table as one `[n, d]` float32 array."""
    values = table[column].to_numpy()
    if len(values) == 0:
        return np.zeros((0, 0), np.float32)
    return np.stack(values).astype(np.float32, copy=False)


def write_embeddings(table, path, *, metadata: dict) -> None:
    """Write a table with an embedding column to Parquet.

    The embedding is a fixed_size_list<float32>[d] column; `metadata` (checkpoint,
    step, which, modality_spec, dataset) is JSON in the schema metadata. The file
    appears complete or not at all.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    z = embedding_matrix(table)
    arrow = pa.Table.from_pandas(table.drop(columns=["embedding"]), preserve_index=False)
    values = pa.array(z.reshape(-1), pa.float32())
    arrow = arrow.append_column(
        pa.field("embedding", pa.list_(pa.float32(), z.shape[1])),
        pa.FixedSizeListArray.from_arrays(values, z.shape[1]),
    )
    meta = {
        **(arrow.schema.metadata or {}),
        METADATA_KEY: json.dumps(metadata, default=json_default).encode(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow.replace_schema_metadata(meta), tmp)
    tmp.replace(path)


def read_embeddings(path):
    """(table without the embedding column, [n, d] float32 embeddings, metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such embeddings file")
    try:
        arrow = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
    meta = arrow.schema.metadata or {}
    if "embedding" not in arrow.column_names or METADATA_KEY not in meta:
        raise ValueError(
            f"{path}: not an embeddings file (no embedding column or "
            f"{METADATA_KEY.decode()} metadata); write it with write_embeddings"
        )
    column = arrow.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise ValueError(
            f"{path}: the embedding column is {column.type}, not a fixed_size_list<float32>"
        )
    d = column.type.list_size
    z = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    table = arrow.drop_columns(["embedding"]).to_pandas()
    return table, z.reshape(len(column), d), json.loads(meta[METADATA_KEY])
