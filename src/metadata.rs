//! Singer metadata columns (`add_metadata_columns`): the values of the `_sdc_` columns
//! that do not come from the record, and the run's clock they are taken from.
//!
//! Owns: `_sdc_extracted_at` (the RECORD's `time_extracted`), `_sdc_received_at` (when
//! the record was read), `_sdc_sequence` (a number that grows with every record of the
//! run), `_sdc_table_version` (the RECORD's `version`, or the stream's last
//! ACTIVATE_VERSION, resolved by the caller) and `_sdc_batched_at` (when the chunk was
//! handed on for encoding, one value per chunk). `_sdc_deleted_at` is a record field,
//! decoded by `batch` with the others; which columns exist and their types belong to
//! `schema`. Also the values of Mage's `_mage_created_at` / `_mage_updated_at`
//! (`mage_columns`) and crowemi/target-s3's `_PROCESS_DATE` (`include_process_date`).
//! Must not touch: the record's own columns, encoding or the store.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrayBuilder, ArrayRef, Int64Array, Int64Builder, make_array};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;

use crate::protocol::BorrowedStr;
use crate::values;

/// What a RECORD message says beside its record.
#[derive(Debug, Default, Clone, Copy)]
pub struct Envelope<'a> {
    /// `time_extracted`, as its raw JSON text (a quoted string, `null`, ...).
    pub time_extracted: Option<&'a str>,
    /// The record's `version`, or else the stream's last ACTIVATE_VERSION.
    pub table_version: Option<i64>,
}

/// Nanoseconds since the Unix epoch: the wall clock read once, then a monotonic clock,
/// so a time taken later in the run is never earlier (received before batched).
pub fn now_ns() -> i64 {
    static START: OnceLock<(i64, Instant)> = OnceLock::new();
    let (wall, started) = START.get_or_init(|| {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (
            i64::try_from(since_epoch.as_nanos()).unwrap_or(0),
            Instant::now(),
        )
    });
    let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    wall.saturating_add(elapsed)
}

/// The next `_sdc_sequence`: the time in nanoseconds since the epoch, raised to one more
/// than the last value where needed, so values are unique and grow in input order within
/// the run, and a later run's values are larger still.
fn next_sequence(now: i64) -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(i64::MIN);
    let next = |last: i64| now.max(last.saturating_add(1));
    let last = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or(i64::MIN);
    next(last)
}

/// Nanoseconds since the epoch in `unit`, rounded down.
fn in_unit(ns: i64, unit: TimeUnit) -> i64 {
    ns.div_euclid(match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    })
}

/// The buffered values of the metadata columns a record does not carry.
#[derive(Debug)]
pub struct MetaColumns {
    unit: TimeUnit,
    extracted_at: Int64Builder,
    received_at: Int64Builder,
    sequence: Int64Builder,
    table_version: Int64Builder,
}

impl MetaColumns {
    pub fn new(unit: TimeUnit) -> MetaColumns {
        MetaColumns {
            unit,
            extracted_at: Int64Builder::new(),
            received_at: Int64Builder::new(),
            sequence: Int64Builder::new(),
            table_version: Int64Builder::new(),
        }
    }

    /// Adds the values of a row whose record was taken, or says why `time_extracted`
    /// cannot be one and adds nothing.
    pub fn push(&mut self, envelope: &Envelope) -> Result<(), String> {
        let extracted_at = match envelope.time_extracted {
            Some(raw) => self.time_extracted(raw)?,
            None => None,
        };
        let now = now_ns();
        self.extracted_at.append_option(extracted_at);
        self.received_at.append_value(in_unit(now, self.unit));
        self.sequence.append_value(next_sequence(now));
        self.table_version.append_option(envelope.table_version);
        Ok(())
    }

    fn time_extracted(&self, raw: &str) -> Result<Option<i64>, String> {
        let parsed = match serde_json::from_str::<Option<BorrowedStr>>(raw) {
            Ok(None) => return Ok(None),
            Ok(Some(BorrowedStr(text))) => values::parse_timestamp(&text, self.unit).map(Some),
            Err(_) => Err(String::new()),
        };
        parsed.map_err(|why| {
            let got = values::describe_raw(raw);
            let why = if why.is_empty() {
                why
            } else {
                format!(" ({why})")
            };
            format!("\"time_extracted\": expected an RFC 3339 date-time or null, got {got}{why}")
        })
    }

    /// Hands out the metadata columns in file order, with `deleted_at` (decoded from the
    /// records) in its place and the time of this call as every row's `_sdc_batched_at`.
    pub fn finish(&mut self, deleted_at: ArrayRef) -> Result<Vec<ArrayRef>, ArrowError> {
        let timestamp = DataType::Timestamp(self.unit, Some("UTC".into()));
        let rows = self.received_at.len();
        let batched_at = Int64Array::from_value(in_unit(now_ns(), self.unit), rows);
        Ok(vec![
            retyped(finish(&mut self.extracted_at), &timestamp)?,
            retyped(finish(&mut self.received_at), &timestamp)?,
            retyped(batched_at, &timestamp)?,
            deleted_at,
            std::sync::Arc::new(finish(&mut self.sequence)),
            std::sync::Arc::new(finish(&mut self.table_version)),
        ])
    }
}

/// The values of the `columns` stamped columns (Mage's `_mage_created_at` and
/// `_mage_updated_at`, crowemi/target-s3's `_PROCESS_DATE`) for `rows` rows: the time of
/// this call in each, as Mage's destination stamps the records it exports.
pub fn mage_columns(
    unit: TimeUnit,
    rows: usize,
    columns: usize,
) -> Result<Vec<ArrayRef>, ArrowError> {
    let timestamp = DataType::Timestamp(unit, Some("UTC".into()));
    let now = Int64Array::from_value(in_unit(now_ns(), unit), rows);
    (0..columns)
        .map(|_| retyped(now.clone(), &timestamp))
        .collect()
}

/// Takes a builder's values, leaving one with room for as many: chunks are alike.
fn finish(builder: &mut Int64Builder) -> Int64Array {
    let fresh = Int64Builder::with_capacity(builder.len());
    std::mem::replace(builder, fresh).finish()
}

/// The same 64-bit values as another type (a timestamp in the column's unit).
fn retyped(values: Int64Array, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
    let data = values
        .into_data()
        .into_builder()
        .data_type(data_type.clone())
        .build()?;
    Ok(make_array(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType, TimestampMillisecondType};

    fn envelope<'a>(time_extracted: Option<&'a str>, version: Option<i64>) -> Envelope<'a> {
        Envelope {
            time_extracted,
            table_version: version,
        }
    }

    #[test]
    fn fills_each_column_from_its_source() {
        let before = in_unit(now_ns(), TimeUnit::Microsecond);
        let mut meta = MetaColumns::new(TimeUnit::Microsecond);
        let time = r#""2024-01-02T03:04:05.123456+01:00""#;
        meta.push(&envelope(Some(time), Some(7))).unwrap();
        meta.push(&envelope(Some("null"), None)).unwrap();
        meta.push(&envelope(None, Some(8))).unwrap();
        let deleted: ArrayRef = Arc::new(Int64Array::from(vec![None, None, None]));
        let arrays = meta.finish(deleted).unwrap();
        assert_eq!(arrays.len(), 6);
        let extracted = arrays[0].as_primitive::<TimestampMicrosecondType>();
        assert_eq!(extracted.value(0), 1_704_161_045_123_456);
        assert!(extracted.is_null(1) && extracted.is_null(2));
        let received = arrays[1].as_primitive::<TimestampMicrosecondType>();
        let batched = arrays[2].as_primitive::<TimestampMicrosecondType>();
        for row in 0..3 {
            assert!(received.value(row) >= before);
            assert!(batched.value(row) >= received.value(row));
        }
        assert_eq!(batched.value(0), batched.value(2));
        let sequence = arrays[4].as_primitive::<Int64Type>();
        assert!(sequence.value(0) < sequence.value(1) && sequence.value(1) < sequence.value(2));
        assert!(sequence.value(0) >= before * 1000);
        let versions = arrays[5].as_primitive::<Int64Type>();
        assert_eq!(
            versions.iter().collect::<Vec<_>>(),
            [Some(7), None, Some(8)]
        );
        assert!(matches!(
            arrays[1].data_type(),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC"
        ));
    }

    #[test]
    fn sequence_grows_even_within_one_nanosecond() {
        let now = now_ns();
        let first = next_sequence(now);
        let second = next_sequence(now);
        assert!(second > first && first >= now);
    }

    #[test]
    fn time_extracted_that_is_not_a_date_time_is_refused() {
        let mut meta = MetaColumns::new(TimeUnit::Millisecond);
        for (bad, says) in [
            ("12", "got the number 12"),
            (r#""yesterday""#, "yesterday"),
            (r#""2024-01-01T00:00:00.123456Z""#, "timestamp_unit"),
        ] {
            let e = meta.push(&envelope(Some(bad), None)).unwrap_err();
            assert!(e.contains("\"time_extracted\"") && e.contains(says), "{e}");
        }
        meta.push(&envelope(Some(r#""2024-01-01T00:00:00.5Z""#), None))
            .unwrap();
        let arrays = meta.finish(Arc::new(Int64Array::from(vec![None]))).unwrap();
        let extracted = arrays[0].as_primitive::<TimestampMillisecondType>();
        assert_eq!(extracted.len(), 1);
        assert_eq!(extracted.value(0), 1_704_067_200_500);
    }

    use std::sync::Arc;
}
