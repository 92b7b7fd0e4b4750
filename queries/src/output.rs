//! Writing query results as a text table, CSV, JSON (an array of objects, or lines) or Parquet.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;

use crate::error::Result;

/// An output format of `vigil sql` and `vigil query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet (binary; use --output FILE or redirect).
    Parquet,
}

/// Writes `batches` (all of `schema`) to `out` in `format`.
pub fn write_batches<W: Write + Send>(
    out: W,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    let mut out = out;
    match format {
        Format::Table => {
            let text = if batches.iter().all(|b| b.num_rows() == 0) {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                format!("{}\n(0 rows)", names.join(" | "))
            } else {
                arrow::util::pretty::pretty_format_batches(batches)?.to_string()
            };
            writeln!(out, "{text}").map_err(|e| crate::QueryError::io("<output>", e))?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(out);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone()))?;
            }
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            out.write_all(b"\n").map_err(|e| crate::QueryError::io("<output>", e))?;
        }
        Format::Jsonl => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => {
            let mut w = ArrowWriter::try_new(out, schema.clone(), None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("x"), None])),
            ],
        )
        .unwrap();
        (schema, b)
    }

    fn render(format: Format) -> Vec<u8> {
        let (s, b) = batch();
        let mut out = Vec::new();
        write_batches(&mut out, &s, &[b], format).unwrap();
        out
    }

    #[test]
    fn formats() {
        assert_eq!(String::from_utf8(render(Format::Csv)).unwrap(), "a,b\n1,x\n2,\n");
        assert_eq!(
            String::from_utf8(render(Format::Json)).unwrap(),
            "[{\"a\":1,\"b\":\"x\"},{\"a\":2}]\n"
        );
        assert_eq!(
            String::from_utf8(render(Format::Jsonl)).unwrap(),
            "{\"a\":1,\"b\":\"x\"}\n{\"a\":2}\n"
        );
        let table = String::from_utf8(render(Format::Table)).unwrap();
        assert!(table.contains("| a | b |"), "{table}");
        assert_eq!(&render(Format::Parquet)[..4], b"PAR1");
        let (s, _) = batch();
        let mut out = Vec::new();
        write_batches(&mut out, &s, &[], Format::Json).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "[]\n");
    }
}
