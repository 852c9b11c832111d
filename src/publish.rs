//! The end of a successful run, when `manifest` or `load_method: overwrite` is set: a
//! manifest per stream, then the older objects of the replaced streams deleted. `target`
//! writes the STATE it held back only after both, and calls this after nothing else.
//!
//! Owns: the manifest's format, which streams are replaced, and the rules that keep
//! deletion safe. Must not touch: input, or any object this run wrote.
//!
//! Manifest: Redshift's COPY manifest, in the shape Redshift's own `UNLOAD … MANIFEST
//! VERBOSE` writes (COPY reads such manifests back): `entries` of `url`, `mandatory` and
//! `meta` (`content_length`, which COPY needs for Parquet, `record_count`, and the
//! `checksum` the object was sent with when one was); then
//! `schema.elements` (column names and SQL types), a `meta` with the totals (plus the
//! stream, run id, file type, table version and the rejected-records objects) and an
//! `author`. URLs are `s3://<bucket>/<key>`, for a local folder too, so a folder synced
//! to a bucket keeps valid manifests. A stream whose columns change within a run gets
//! one manifest per set of columns; rejected-records objects are listed in the meta of
//! the stream's last manifest, never among the entries (they are JSONL, not the table).
//!
//! Replacement: a stream is replaced when this run stored rows for it or received its
//! ACTIVATE_VERSION (an empty table sent whole is a legitimate replacement); a stream
//! with neither is left alone. For each replaced folder `<object_key_path>/<table>/`,
//! every listed key under it that this run did not write is deleted — and nothing at
//! all if the listing lacks an object this run wrote there.
//!
//! Meltano's connection test (`meltano config test`) sends a loader one record of the
//! stream `meltano_test_stream`: what that stream stored proves the destination takes
//! writes, and is deleted again at the end, so the test leaves nothing behind.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::config::{Config, LoadMethod};
use crate::encode;
use crate::error::{Error, Result};
use crate::object_key::{KeyBuilder, ObjectKind};
use crate::schema::StreamSchema;
use crate::stop::Brake;
use crate::store::Store;
use crate::store::checksum::Algorithm;

/// An object this run stored.
#[derive(Debug, Clone)]
pub struct StoredObject {
    /// Objects are numbered in the order they were started.
    pub id: u64,
    pub stream: String,
    pub key: String,
    pub kind: ObjectKind,
    pub rows: usize,
    pub bytes: u64,
    /// The checksum it was sent with, which the store verified on receipt.
    pub checksum: Option<(Algorithm, String)>,
    /// The columns a data object was written with.
    pub schema: Option<Arc<StreamSchema>>,
}

/// A stream as the run ends.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    pub name: String,
    pub schema: Arc<StreamSchema>,
    /// The version of the last ACTIVATE_VERSION received, if any.
    pub version: Option<i64>,
}

/// Where the run's end writes and deletes: the store, the runtime its requests run on,
/// and the brake a stop signal pulls.
pub struct Destination {
    pub store: Store,
    pub runtime: Handle,
    pub brake: Brake,
}

impl Destination {
    /// Waits for `work`, unless a stop signal comes first.
    pub fn wait<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(self.brake.unless_pulled(work))
    }
}

/// The stream `meltano config test` sends: a probe, not data.
pub const PROBE_STREAM: &str = "meltano_test_stream";

/// Deletes the objects the probe stream stored, and says so; when they cannot be
/// deleted, says where they are. Returns how many were deleted.
pub fn remove_probe(destination: &Destination, stored: &[StoredObject]) -> u64 {
    let keys: Vec<String> = stored
        .iter()
        .filter(|o| o.stream == PROBE_STREAM)
        .map(|o| o.key.clone())
        .collect();
    let Some(first) = keys.first() else {
        return 0;
    };
    let store = &destination.store;
    let location = store.location(first);
    match destination.wait(store.delete(keys.clone())) {
        Ok(()) => {
            tracing::info!(
                "connection test: stream {PROBE_STREAM:?} was stored ({location}) and deleted again; nothing is left behind"
            );
            keys.len() as u64
        }
        Err(e) => {
            tracing::warn!(
                "connection test: stream {PROBE_STREAM:?} was stored at {location} and could not be deleted ({e}); delete it by hand"
            );
            0
        }
    }
}

/// What the end of the run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub manifests: u64,
    pub deleted: u64,
}

/// Writes the manifests, then deletes the replaced streams' older objects. Every key
/// written here joins `written`. A stop signal is looked at before each step that
/// changes the store and ends any wait, so a signal leaves older objects in place.
pub fn publish(
    config: &Config,
    destination: &Destination,
    keys: &mut KeyBuilder,
    streams: &[StreamEnd],
    stored: &[StoredObject],
    written: &mut HashSet<String>,
) -> Result<Published> {
    let store = &destination.store;
    let stop = || destination.brake.stopped();
    let mut published = Published::default();
    if config.store.manifest {
        for stream in streams.iter().filter(|s| s.name != PROBE_STREAM) {
            for body in manifests(config, keys.run_id(), stream, stored) {
                stop()?;
                let key = keys
                    .next_key(&stream.name, ObjectKind::Manifest, Utc::now(), "")
                    .map_err(|e| Error::Store(format!("stream {:?}: {e}", stream.name)))?;
                tracing::info!(
                    "stream {:?}: writing manifest {}",
                    stream.name,
                    store.location(&key)
                );
                written.insert(key.clone());
                let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
                destination.wait(store.put(key, body, encode::JSON))?;
                published.manifests += 1;
            }
        }
    }
    if config.store.load_method == LoadMethod::Overwrite {
        let mut folders: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for stream in streams.iter().filter(|s| is_replaced(s, stored)) {
            let folder = keys.stream_prefix(&stream.name);
            folders.entry(folder).or_default().push(&stream.name);
        }
        for (folder, names) in folders {
            stop()?;
            let listed = destination.wait(store.list(&folder))?;
            let older = older_objects(&folder, listed, written).map_err(Error::Store)?;
            let count = older.len() as u64;
            if count > 0 {
                destination.wait(store.delete(older))?;
            }
            tracing::info!(
                "streams {names:?} replaced: {} deleted under {}",
                plural(count, "older object"),
                store.location(&folder)
            );
            published.deleted += count;
        }
    }
    Ok(published)
}

/// Whether the run replaces the stream's folder: it stored rows for it, or received its
/// ACTIVATE_VERSION. A stream that only had its SCHEMA sent (an incremental run that
/// found nothing new) keeps what it has.
pub fn is_replaced(stream: &StreamEnd, stored: &[StoredObject]) -> bool {
    stream.version.is_some()
        || stored
            .iter()
            .any(|o| o.stream == stream.name && o.kind == ObjectKind::Data && o.rows > 0)
}

/// The keys to delete from `folder`: every listed key under it that this run did not
/// write. Refuses (deleting nothing) when `folder` is not a folder, or when the listing
/// lacks an object this run wrote under it: a listing that cannot be trusted.
pub fn older_objects(
    folder: &str,
    listed: Vec<String>,
    written: &HashSet<String>,
) -> Result<Vec<String>, String> {
    if !folder.ends_with('/') || folder.trim_matches('/').is_empty() {
        return Err(format!(
            "overwrite refused to delete under {folder:?}: not a table folder"
        ));
    }
    let present: HashSet<&str> = listed.iter().map(String::as_str).collect();
    if let Some(missing) = written
        .iter()
        .find(|k| k.starts_with(folder) && !present.contains(k.as_str()))
    {
        return Err(format!(
            "overwrite deleted nothing under {folder:?}: its listing lacks {missing:?}, which this run stored"
        ));
    }
    Ok(listed
        .into_iter()
        .filter(|k| k.starts_with(folder) && !written.contains(k))
        .collect())
}

/// The manifests of one stream: one per set of columns its data objects were written
/// with (in the order they were started), or a single one with no entries when the
/// stream was sent whole and empty.
pub fn manifests(
    config: &Config,
    run_id: &str,
    stream: &StreamEnd,
    stored: &[StoredObject],
) -> Vec<Value> {
    let mut mine: Vec<&StoredObject> = stored.iter().filter(|o| o.stream == stream.name).collect();
    mine.sort_by_key(|o| o.id);
    let rejected: Vec<&StoredObject> = mine
        .iter()
        .copied()
        .filter(|o| o.kind == ObjectKind::Rejected)
        .collect();
    let mut groups: Vec<(Arc<StreamSchema>, Vec<&StoredObject>)> = Vec::new();
    for object in mine.iter().filter(|o| o.kind == ObjectKind::Data) {
        let schema = object
            .schema
            .clone()
            .unwrap_or_else(|| stream.schema.clone());
        match groups.last_mut() {
            Some((last, objects)) if **last == *schema => objects.push(object),
            _ => groups.push((schema, vec![object])),
        }
    }
    if groups.is_empty() {
        if rejected.is_empty() && stream.version.is_none() {
            return Vec::new();
        }
        groups.push((stream.schema.clone(), Vec::new()));
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(n, (schema, objects))| {
            let rejected = if n == last { &rejected[..] } else { &[] };
            manifest(config, run_id, stream, schema, objects, rejected)
        })
        .collect()
}

fn manifest(
    config: &Config,
    run_id: &str,
    stream: &StreamEnd,
    schema: &StreamSchema,
    objects: &[&StoredObject],
    rejected: &[&StoredObject],
) -> Value {
    let url = |key: &str| format!("s3://{}/{key}", config.bucket);
    let entries: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut meta = json!({"content_length": o.bytes, "record_count": o.rows});
            if let Some((algorithm, value)) = &o.checksum {
                meta["checksum"] = json!({"algorithm": algorithm.name(), "value": value});
            }
            json!({"url": url(&o.key), "mandatory": true, "meta": meta})
        })
        .collect();
    let elements: Vec<Value> = schema
        .columns
        .iter()
        .map(|c| json!({"name": c.output_name, "type": {"base": c.ty.sql_name()}}))
        .collect();
    let rejected: Vec<Value> = rejected
        .iter()
        .map(|o| json!({"url": url(&o.key), "content_length": o.bytes, "record_count": o.rows}))
        .collect();
    let mut meta = json!({
        "content_length": objects.iter().map(|o| o.bytes).sum::<u64>(),
        "record_count": objects.iter().map(|o| o.rows as u64).sum::<u64>(),
        "stream": stream.name,
        "run_id": run_id,
        "file_type": config.file_type.extension(),
        "key_properties": schema.key_properties,
        "rejected": rejected,
    });
    if let Some(version) = stream.version {
        meta["table_version"] = json!(version);
    }
    json!({
        "entries": entries,
        "schema": {"elements": elements},
        "meta": meta,
        "author": {"name": "target-s3", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// `n` and the word, plural unless `n` is 1 (here and in the run's summary).
pub fn plural(n: u64, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        _ => format!("{n} {word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TypeOptions;

    fn config(extra: Value) -> Config {
        let mut v = json!({"bucket": "lake", "file_type": "parquet", "object_key_path": "p"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        Config::from_map(v.as_object().unwrap()).unwrap().0
    }

    fn schema(columns: &str) -> Arc<StreamSchema> {
        let properties: Vec<String> = columns
            .split(',')
            .map(|c| format!("\"{c}\": {{\"type\": \"integer\"}}"))
            .collect();
        let json = format!("{{\"properties\": {{{}}}}}", properties.join(","));
        Arc::new(StreamSchema::from_json("s", &json, &[], &TypeOptions::default()).unwrap())
    }

    fn object(id: u64, stream: &str, kind: ObjectKind, rows: usize, cols: &str) -> StoredObject {
        StoredObject {
            id,
            stream: stream.into(),
            key: format!("p/{stream}/{id}"),
            kind,
            rows,
            bytes: 100 * id,
            checksum: (id == 1).then(|| (Algorithm::Crc32c, "crUfeA==".into())),
            schema: (kind == ObjectKind::Data).then(|| schema(cols)),
        }
    }

    fn end(name: &str, version: Option<i64>) -> StreamEnd {
        StreamEnd {
            name: name.into(),
            schema: schema("id"),
            version,
        }
    }

    #[test]
    fn manifest_lists_data_objects_in_redshift_form() {
        let stored = [
            object(2, "s", ObjectKind::Data, 7, "id"),
            object(1, "s", ObjectKind::Data, 5, "id"),
            object(3, "s", ObjectKind::Rejected, 1, ""),
            object(4, "other", ObjectKind::Data, 9, "id"),
        ];
        let [m] = &manifests(&config(json!({})), "run", &end("s", Some(42)), &stored)[..] else {
            panic!("one manifest")
        };
        assert_eq!(
            m["entries"],
            json!([
                {"url": "s3://lake/p/s/1", "mandatory": true, "meta": {"content_length": 100, "record_count": 5,
                    "checksum": {"algorithm": "crc32c", "value": "crUfeA=="}}},
                {"url": "s3://lake/p/s/2", "mandatory": true, "meta": {"content_length": 200, "record_count": 7}},
            ])
        );
        assert_eq!(
            m["schema"],
            json!({"elements": [{"name": "id", "type": {"base": "bigint"}}]})
        );
        assert_eq!(m["meta"]["record_count"], 12);
        assert_eq!(m["meta"]["content_length"], 300);
        assert_eq!(m["meta"]["table_version"], 42);
        assert_eq!(m["meta"]["rejected"][0]["url"], "s3://lake/p/s/3");
        assert_eq!(m["author"]["name"], "target-s3");
    }

    #[test]
    fn one_manifest_per_set_of_columns_and_none_for_an_idle_stream() {
        let stored = [
            object(1, "s", ObjectKind::Data, 5, "id"),
            object(2, "s", ObjectKind::Data, 5, "id,extra"),
        ];
        let all = manifests(&config(json!({})), "run", &end("s", None), &stored);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["schema"]["elements"][1]["name"], "extra");
        assert!(manifests(&config(json!({})), "run", &end("idle", None), &stored).is_empty());
        let empty = manifests(&config(json!({})), "run", &end("idle", Some(1)), &stored);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0]["entries"], json!([]));
    }

    #[test]
    fn replaced_streams() {
        let stored = [
            object(1, "s", ObjectKind::Data, 5, "id"),
            object(2, "q", ObjectKind::Rejected, 3, ""),
        ];
        assert!(is_replaced(&end("s", None), &stored));
        assert!(is_replaced(&end("empty", Some(3)), &stored));
        assert!(
            !is_replaced(&end("q", None), &stored),
            "refused records alone replace nothing"
        );
        assert!(!is_replaced(&end("idle", None), &stored));
    }

    #[test]
    fn older_objects_are_only_foreign_keys_under_the_folder() {
        let written: HashSet<String> = ["p/t/new.parquet".to_string()].into();
        let listed = vec![
            "p/t/new.parquet".to_string(),
            "p/t/old.parquet".to_string(),
            "p/t/_manifests/old.json".to_string(),
            "p/t2/other.parquet".to_string(),
        ];
        assert_eq!(
            older_objects("p/t/", listed.clone(), &written).unwrap(),
            vec!["p/t/old.parquet", "p/t/_manifests/old.json"]
        );
        let e = older_objects("p/t/", listed[1..].to_vec(), &written).unwrap_err();
        assert!(e.contains("lacks") && e.contains("new.parquet"), "{e}");
        assert!(older_objects("p/t", listed.clone(), &written).is_err());
        assert!(older_objects("/", listed, &written).is_err());
    }
}
