"""Rebuilds data-samples/triples/ from a tagged triples table.

    target/release/rlpt run data-samples/pipeline.toml      # with SmolLM2 fetched
    python3 data-samples/make_triples.py rlpt-out/sample/tagged

Documents are split by id: every tenth document in sorted order is held out
(heldout.parquet, for `rlpt eval`), the rest is train.parquet. The files keep the
tagged table's rlpt metadata (schema, stage, model).
"""

import glob
import sys

import polars as pl
import pyarrow.parquet as pq


def main(tagged: str) -> None:
    source = pq.ParquetFile(sorted(glob.glob(f"{tagged}/*.parquet"))[0])
    metadata = {k.decode(): v.decode() for k, v in (source.metadata.metadata or {}).items()}
    metadata.pop("ARROW:schema", None)
    table = pl.read_parquet(f"{tagged}/*.parquet")
    docs = sorted(table["doc_id"].unique().to_list())
    held = set(docs[9::10])
    for name, part in [
        ("train", table.filter(~pl.col("doc_id").is_in(held))),
        ("heldout", table.filter(pl.col("doc_id").is_in(held))),
    ]:
        arrow = part.to_arrow().cast(source.schema_arrow.remove_metadata())
        arrow = arrow.replace_schema_metadata(metadata)
        pq.write_table(arrow, f"data-samples/triples/{name}.parquet", compression="zstd")
        print(name, part.shape[0], "triples")


if __name__ == "__main__":
    main(sys.argv[1])
