//! Object keys: `<object_key_path>/<table>/<date partition>/<timestamp>-<unique>.<ext>`,
//! and `<object_key_path>/<table>/_rejected/…` and `…/_manifests/…` beside them.
//!
//! Owns: the key layout of SPEC §5, the stream's folder every one of its keys starts
//! with, the rule that makes a stream name key-safe, and the unique part that keeps two
//! batches from ever sharing a key.
//! Must not touch: the store. A key is decided before upload and never reused.
//!
//! Table rule: ASCII letters, digits, `-`, `_` and `.` are kept; every other character
//! (slashes, colons, spaces, non-ASCII) becomes `_`; a name left empty or made of dots
//! alone becomes `_`. `test:SpecialChars!in?attributes` → `test_SpecialChars_in_attributes`.
//!
//! Unique part: a random run id (16 hex digits, new each run) and a sequence number that
//! grows with every object the run writes, so keys differ within one second and across
//! concurrent runs.

use std::hash::{BuildHasher, Hasher};

use chrono::{DateTime, Utc};

use crate::config::Config;

/// What an object holds, which decides its folder and extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A batch of rows in the configured file type.
    Data,
    /// Records refused under `invalid_records: quarantine`, as JSONL, in `_rejected/`.
    Rejected,
    /// A stream's manifest of one run, as JSON, in `_manifests/`.
    Manifest,
}

/// The folder for quarantined records, under the table's folder.
pub const REJECTED_FOLDER: &str = "_rejected";
/// The folder for manifests, under the table's folder.
pub const MANIFEST_FOLDER: &str = "_manifests";

pub struct KeyBuilder {
    prefix: String,
    table: Option<String>,
    date_partition_format: Option<String>,
    extension: &'static str,
    run_id: String,
    sequence: u64,
}

impl KeyBuilder {
    pub fn new(config: &Config) -> KeyBuilder {
        KeyBuilder {
            prefix: config.object_key_path.clone(),
            table: config.table.clone(),
            date_partition_format: config.date_partition_format.clone(),
            extension: config.file_type.extension(),
            run_id: random_run_id(),
            sequence: 0,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The folder every key of `stream` starts with, `<object_key_path>/<table>/`, with
    /// its trailing slash, so that it never matches another table whose name merely
    /// begins the same way. Streams that share a `table` share this folder.
    pub fn stream_prefix(&self, stream: &str) -> String {
        let table = table_name(self.table.as_deref().unwrap_or(stream));
        format!("{}/", joined(&[&self.prefix, &table]))
    }

    /// The key for the next object of `stream`, written at `now`.
    pub fn next_key(&mut self, stream: &str, kind: ObjectKind, now: DateTime<Utc>) -> String {
        self.sequence += 1;
        let (partition, extension) = match kind {
            ObjectKind::Data => (
                self.date_partition_format
                    .as_ref()
                    .map(|f| now.format(f).to_string()),
                self.extension,
            ),
            ObjectKind::Rejected => (Some(REJECTED_FOLDER.to_owned()), "jsonl"),
            ObjectKind::Manifest => (Some(MANIFEST_FOLDER.to_owned()), "json"),
        };
        let file = format!(
            "{}-{}-{:05}.{extension}",
            now.format("%Y%m%d-%H%M%S"),
            self.run_id,
            self.sequence,
        );
        let rest = joined(&[partition.as_deref().unwrap_or(""), &file]);
        format!("{}{rest}", self.stream_prefix(stream))
    }
}

/// Parts joined by single slashes, with no empty segments.
fn joined(parts: &[&str]) -> String {
    let segments: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.split('/'))
        .filter(|s| !s.is_empty())
        .collect();
    segments.join("/")
}

/// A stream name made safe for one key segment (the rule in the module comment).
pub fn table_name(stream: &str) -> String {
    let safe: String = stream
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.chars().all(|c| c == '.') {
        "_".to_owned()
    } else {
        safe
    }
}

/// 64 random bits from the standard library's per-process random hash keys, mixed with
/// the clock and process id.
fn random_run_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn builder(extra: serde_json::Value) -> KeyBuilder {
        let mut v =
            json!({"bucket": "b", "file_type": "csv", "object_key_path": "/exports//daily/"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let (config, _) = Config::from_map(v.as_object().unwrap()).unwrap();
        KeyBuilder::new(&config)
    }

    #[test]
    fn layout_with_partition_and_unique_part() {
        let mut keys = builder(json!({"date_partition_format": "year=%Y/month=%m/"}));
        let now = Utc.with_ymd_and_hms(2024, 3, 9, 4, 5, 6).unwrap();
        let a = keys.next_key("public-users", ObjectKind::Data, now);
        let b = keys.next_key("public-users", ObjectKind::Data, now);
        let r = keys.next_key("public-users", ObjectKind::Rejected, now);
        assert!(
            r.starts_with("exports/daily/public-users/_rejected/20240309-040506-")
                && r.ends_with("-00003.jsonl"),
            "{r}"
        );
        let run = keys.run_id().to_owned();
        assert_eq!(
            a,
            format!(
                "exports/daily/public-users/year=2024/month=03/20240309-040506-{run}-00001.csv"
            )
        );
        assert_ne!(a, b);
        assert!(!a.contains("//") && !a.starts_with('/'));
    }

    #[test]
    fn table_key_and_empty_prefix() {
        let mut keys = builder(json!({"object_key_path": "", "table": "orders"}));
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        assert!(
            keys.next_key("anything", ObjectKind::Data, now)
                .starts_with("orders/20240101-000000-")
        );
    }

    #[test]
    fn every_key_of_a_stream_starts_with_its_prefix() {
        let now = Utc.with_ymd_and_hms(2024, 3, 9, 4, 5, 6).unwrap();
        let mut keys = builder(json!({"date_partition_format": "%Y/%m"}));
        assert_eq!(keys.stream_prefix("a:b"), "exports/daily/a_b/");
        for kind in [ObjectKind::Data, ObjectKind::Rejected, ObjectKind::Manifest] {
            let key = keys.next_key("a:b", kind, now);
            assert!(key.starts_with("exports/daily/a_b/"), "{key}");
        }
        let manifest = keys.next_key("a", ObjectKind::Manifest, now);
        assert!(
            manifest.starts_with("exports/daily/a/_manifests/20240309-040506-")
                && manifest.ends_with(".json"),
            "{manifest}"
        );
        let bare = builder(json!({"object_key_path": ""}));
        assert_eq!(bare.stream_prefix("s"), "s/");
        let shared = builder(json!({"table": "orders"}));
        assert_eq!(shared.stream_prefix("x"), shared.stream_prefix("y"));
    }

    #[test]
    fn run_ids_differ() {
        assert_ne!(random_run_id(), random_run_id());
    }

    #[test]
    fn table_names_are_key_safe() {
        assert_eq!(
            table_name("test:SpecialChars!in?attributes"),
            "test_SpecialChars_in_attributes"
        );
        assert_eq!(table_name("a/b c"), "a_b_c");
        assert_eq!(table_name("naïve"), "na_ve");
        assert_eq!(table_name(".."), "_");
        assert_eq!(table_name(""), "_");
        assert_eq!(table_name("public-users.v2"), "public-users.v2");
    }
}
