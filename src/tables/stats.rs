//! A stored Parquet object as an Iceberg data file: its path, size, record count and
//! the per-column counts and bounds engines prune files with, all read from the
//! footer the encoder wrote (no second pass over the data).
//!
//! Owns: turning Parquet column statistics into Iceberg's. Must not touch: the
//! catalog or the object's bytes.

use std::cmp::Ordering;
use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, PrimitiveType, Schema,
    Struct, Type,
};
use parquet::basic::Type as Physical;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

/// The data file entry for the Parquet object at `path` (an `s3://` URL), in the
/// partition given as its spec id and tuple.
pub fn data_file(
    path: String,
    size: u64,
    footer: &ParquetMetaData,
    table: &Schema,
    (spec_id, partition): (i32, Struct),
) -> Result<DataFile, String> {
    let mut columns = Columns::default();
    let mut offsets = Vec::new();
    for group in footer.row_groups() {
        offsets.extend(group.file_offset());
        for chunk in group.columns() {
            columns.add(chunk, table);
        }
    }
    DataFileBuilder::default()
        .content(DataContentType::Data)
        .file_path(path)
        .file_format(DataFileFormat::Parquet)
        .record_count(footer.file_metadata().num_rows().max(0) as u64)
        .file_size_in_bytes(size)
        .column_sizes(columns.sizes)
        .value_counts(columns.values)
        .null_value_counts(columns.nulls)
        .lower_bounds(columns.lower)
        .upper_bounds(columns.upper)
        .split_offsets(Some(offsets))
        .partition_spec_id(spec_id)
        .partition(partition)
        .build()
        .map_err(|e| e.to_string())
}

/// Per field id, summed or merged over the row groups.
#[derive(Default)]
struct Columns {
    sizes: HashMap<i32, u64>,
    values: HashMap<i32, u64>,
    nulls: HashMap<i32, u64>,
    lower: HashMap<i32, Datum>,
    upper: HashMap<i32, Datum>,
}

impl Columns {
    fn add(&mut self, chunk: &ColumnChunkMetaData, table: &Schema) {
        let column = chunk.column_descr();
        let info = column.self_type().get_basic_info();
        if !info.has_id() {
            return;
        }
        let id = info.id();
        *self.sizes.entry(id).or_default() += chunk.compressed_size().max(0) as u64;
        *self.values.entry(id).or_default() += chunk.num_values().max(0) as u64;
        let Some(stats) = chunk.statistics() else {
            return;
        };
        if let Some(nulls) = stats.null_count_opt() {
            *self.nulls.entry(id).or_default() += nulls;
        }
        // Bounds of values inside lists say little per row; Iceberg's writers skip them.
        let primitive = match table.field_by_id(id).map(|f| f.field_type.as_ref()) {
            Some(Type::Primitive(p)) if column.max_rep_level() == 0 => p.clone(),
            _ => return,
        };
        let bound = |bytes: Option<&[u8]>, exact: bool| {
            bytes
                .filter(|_| exact)
                .and_then(|b| datum(b, chunk.column_type(), &primitive))
        };
        if let Some(min) = bound(stats.min_bytes_opt(), stats.min_is_exact()) {
            merge(&mut self.lower, id, min, Ordering::Less);
        }
        if let Some(max) = bound(stats.max_bytes_opt(), stats.max_is_exact()) {
            merge(&mut self.upper, id, max, Ordering::Greater);
        }
    }
}

/// Keeps the smaller (`Less`) or larger (`Greater`) bound of the two.
fn merge(bounds: &mut HashMap<i32, Datum>, id: i32, value: Datum, keep: Ordering) {
    match bounds.get(&id) {
        Some(old) if value.partial_cmp(old) != Some(keep) => {}
        _ => {
            bounds.insert(id, value);
        }
    }
}

/// A Parquet statistic as an Iceberg bound. Parquet's plain encoding of numbers is
/// Iceberg's single-value form (little-endian), except decimals stored as INT32 or
/// INT64, which Iceberg writes big-endian. NaN is never a bound.
fn datum(bytes: &[u8], physical: Physical, primitive: &PrimitiveType) -> Option<Datum> {
    let value = match (primitive, physical) {
        (PrimitiveType::Decimal { .. }, Physical::INT32) => {
            let unscaled = i32::from_le_bytes(bytes.try_into().ok()?);
            Datum::try_from_bytes(&i128::from(unscaled).to_be_bytes(), primitive.clone())
        }
        (PrimitiveType::Decimal { .. }, Physical::INT64) => {
            let unscaled = i64::from_le_bytes(bytes.try_into().ok()?);
            Datum::try_from_bytes(&i128::from(unscaled).to_be_bytes(), primitive.clone())
        }
        _ => Datum::try_from_bytes(bytes, primitive.clone()),
    };
    value.ok().filter(|d| !d.is_nan())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::tables::schema::{new_table_schema, with_field_ids};

    #[test]
    fn counts_and_bounds_come_from_every_row_group() {
        let arrow = Arc::new(ArrowSchema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(9, 2), true),
            Field::new("x", DataType::Float64, true),
        ]));
        let table = new_table_schema(&arrow).unwrap();
        let numbered = with_field_ids(&arrow, &table).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), numbered, Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            arrow.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(5), None, Some(-3)])),
                Arc::new(StringArray::from(vec![Some("b"), Some("a"), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(-150), Some(99), Some(12)])
                        .with_precision_and_scale(9, 2)
                        .unwrap(),
                ),
                Arc::new(Float64Array::from(vec![Some(f64::NAN), Some(1.5), None])),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        let footer = writer.finish().unwrap();
        let unpartitioned = (0, Struct::empty());
        let file = data_file(
            "s3://b/t/data/x.parquet".into(),
            123,
            &footer,
            &table,
            unpartitioned,
        )
        .unwrap();
        assert_eq!(file.record_count(), 3);
        assert_eq!(file.file_size_in_bytes(), 123);
        assert_eq!(file.value_counts()[&1], 3);
        assert_eq!(file.null_value_counts()[&1], 1);
        assert_eq!(file.null_value_counts()[&2], 1);
        assert_eq!(file.lower_bounds()[&1], Datum::long(-3));
        assert_eq!(file.upper_bounds()[&1], Datum::long(5));
        assert_eq!(file.lower_bounds()[&2], Datum::string("a"));
        assert_eq!(file.upper_bounds()[&2], Datum::string("b"));
        let price = |d: &Datum| d.to_human_string();
        assert_eq!(price(&file.lower_bounds()[&3]), "-1.50");
        assert_eq!(price(&file.upper_bounds()[&3]), "0.99");
        assert_eq!(file.split_offsets().map(<[i64]>::len), Some(2));
    }
}
