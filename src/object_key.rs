//! Object keys: `object_key_template` filled in for every object, and the `_rejected/`
//! and `_manifests/` folders beside the data of a stream.
//!
//! Owns: the template and its placeholders, the rule that makes a stream name key-safe,
//! the unique part that keeps two objects from ever sharing a key, and the fixed leading
//! part of a stream's keys (`stream_prefix`).
//! Must not touch: the store. A key is decided before upload and never reused.
//!
//! Placeholders: `{object_key_path}` (the prefix setting), `{table}` (the `table`
//! setting, else the stream name, made key-safe), `{stream}` (the stream name made
//! key-safe, whatever `table` says), `{date_partition}` (`date_partition_format` applied
//! to the object's UTC start time; empty when unset), `{date:<strftime>}` (any pattern
//! applied to that time), `{partition}` (the `partition_by` folders, `name=value/…`),
//! `{run_id}` (16 random hex digits, new each run), `{part}` (a five-digit sequence that
//! grows with every object the run writes), `{uuid}` (a random UUID per object) and
//! `{ext}` (the file extension). After filling in, empty segments are dropped, so keys
//! have no leading or doubled slashes. The default reproduces SPEC §5:
//! `<object_key_path>/<table>/<date partition>/<YYYYMMDD-HHMMSS>-<run id>-<part>.<ext>`.
//!
//! Uniqueness: a template must hold `{run_id}` and `{part}` (unique within a run, and
//! across runs by the run id) or `{uuid}`; any other template is refused at start-up,
//! because an object must never overwrite another.
//!
//! Table rule: letters and digits of any script (Unicode alphanumerics), `-`, `_` and
//! `.` are kept; every other character (slashes, colons, spaces, `%`, combining marks)
//! becomes its UTF-8 bytes as `%XX`, so the rule is reversible and two stream names
//! never share a folder: `a/b` → `a%2Fb`, `a_b` stays, `Продажи` stays. A name made of
//! dots alone has its dots encoded (`..` → `%2E%2E`: never a `..` segment); an empty
//! name becomes `_`, the one name that shares a folder with another, which the run
//! refuses (see `folder_of`). Names that were key-safe before (ASCII letters, digits,
//! `-`, `_`, `.`) keep their folders.
//!
//! Quarantined records (`ObjectKind::Rejected`) take the same template with
//! `{date_partition}` and `{partition}` empty, `jsonl` for `{ext}`, and a `_rejected`
//! folder just before the file name.

use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{BuildHasher, Hasher};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};

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

/// The folder for quarantined records, just above their file name.
pub const REJECTED_FOLDER: &str = "_rejected";
/// The folder for manifests, under the table's folder.
pub const MANIFEST_FOLDER: &str = "_manifests";

/// The key layout of SPEC §5, with the partition folders after the date partition.
pub const DEFAULT_TEMPLATE: &str = "{object_key_path}/{table}/{date_partition}/{partition}/{date:%Y%m%d-%H%M%S}-{run_id}-{part}.{ext}";

/// The longest key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Every placeholder name, as the template spells it.
const PLACEHOLDERS: &[&str] = &[
    "object_key_path",
    "table",
    "stream",
    "date_partition",
    "date:<strftime>",
    "partition",
    "run_id",
    "part",
    "uuid",
    "ext",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    ObjectKeyPath,
    Table,
    Stream,
    DatePartition,
    Date(String),
    Partition,
    RunId,
    Part,
    Uuid,
    Ext,
}

impl Piece {
    /// The placeholder's name (`date` for any `{date:…}`); empty for text.
    fn name(&self) -> &'static str {
        match self {
            Piece::Text(_) => "",
            Piece::ObjectKeyPath => "object_key_path",
            Piece::Table => "table",
            Piece::Stream => "stream",
            Piece::DatePartition => "date_partition",
            Piece::Date(_) => "date",
            Piece::Partition => "partition",
            Piece::RunId => "run_id",
            Piece::Part => "part",
            Piece::Uuid => "uuid",
            Piece::Ext => "ext",
        }
    }

    /// The same for every key of a stream, whatever the object.
    fn is_fixed(&self) -> bool {
        matches!(
            self,
            Piece::Text(_) | Piece::ObjectKeyPath | Piece::Table | Piece::Stream
        )
    }
}

/// A checked `object_key_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
}

impl KeyTemplate {
    /// Parses and checks a template; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        if text.contains("://") {
            return Err("a key template holds no \"s3://\" and no bucket".into());
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let at = rest.find(['{', '}']).unwrap_or(rest.len());
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].to_owned()));
            }
            rest = &rest[at..];
            if rest.starts_with('}') {
                return Err(format!("\"}}\" at {:?} closes no placeholder", cut(rest)));
            }
            if let Some(inner) = rest.strip_prefix('{') {
                let end = inner
                    .find(['{', '}'])
                    .filter(|&i| inner[i..].starts_with('}'));
                let Some(end) = end else {
                    return Err(format!("\"{{\" at {:?} has no closing \"}}\"", cut(rest)));
                };
                pieces.push(placeholder(&inner[..end])?);
                rest = &inner[end + 1..];
            }
        }
        let template = KeyTemplate { pieces };
        if !(template.uses("run_id") && template.uses("part") || template.uses("uuid")) {
            return Err(
                "keys would not be unique: the template must hold {run_id} and {part}, or {uuid}, so that no object ever overwrites another"
                    .into(),
            );
        }
        Ok(template)
    }

    /// Whether the template holds the placeholder `name` (`date` for any `{date:…}`).
    pub fn uses(&self, name: &str) -> bool {
        self.pieces.iter().any(|p| p.name() == name)
    }

    /// The template as written (normalised).
    pub fn text(&self) -> String {
        text_of(&self.pieces)
    }

    /// Checks that a data key is a table's folder, partition folders and a file name,
    /// as a catalog table over the folder needs (`glue_catalog`): first segments of
    /// fixed text and {object_key_path}, {table}, {stream} (naming the table), then
    /// segments that are each {date_partition} or {partition} alone, then the file
    /// name. The error names the segment that breaks this and why.
    pub fn check_table_layout(&self) -> Result<(), String> {
        let segments = self.segments();
        let Some((file, folders)) = segments.split_last() else {
            return Err("the template is empty".into());
        };
        let fixed = folders
            .iter()
            .take_while(|s| s.iter().all(Piece::is_fixed))
            .count();
        let names_table = folders[..fixed]
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::Table | Piece::Stream));
        if !names_table {
            return Err("its folders before the partition folders must name the table with {table} or {stream}: that folder is the table's location".into());
        }
        for segment in &folders[fixed..] {
            let is_partition = matches!(
                segment.as_slice(),
                [Piece::DatePartition | Piece::Partition]
            );
            if !is_partition {
                return Err(format!(
                    "the folder {:?} after the table's folder is not a partition folder: only {{date_partition}} and {{partition}}, each a folder of its own, may stand between the table's folder and the file name, because a table's partitions are its folders",
                    text_of(segment)
                ));
            }
        }
        if let Some(p) = file
            .iter()
            .find(|p| matches!(p, Piece::DatePartition | Piece::Partition))
        {
            return Err(format!(
                "{{{}}} is in the file name {:?}; put it in a folder of its own before the file name",
                p.name(),
                text_of(file)
            ));
        }
        Ok(())
    }

    /// The pieces between slashes; segments of empty text are left out.
    fn segments(&self) -> Vec<Vec<Piece>> {
        let mut segments = vec![Vec::new()];
        for piece in &self.pieces {
            let Piece::Text(text) = piece else {
                segments
                    .last_mut()
                    .expect("one at least")
                    .push(piece.clone());
                continue;
            };
            for (i, part) in text.split('/').enumerate() {
                if i > 0 {
                    segments.push(Vec::new());
                }
                if !part.is_empty() {
                    let last = segments.last_mut().expect("one at least");
                    last.push(Piece::Text(part.to_owned()));
                }
            }
        }
        segments.retain(|s| !s.is_empty());
        segments
    }
}

/// Pieces as the template writes them.
fn text_of(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(text) => text.clone(),
            Piece::Date(pattern) => format!("{{date:{pattern}}}"),
            other => format!("{{{}}}", other.name()),
        })
        .collect()
}

/// The piece for the text between `{` and `}`.
fn placeholder(inner: &str) -> Result<Piece, String> {
    let piece = match inner {
        "object_key_path" => Piece::ObjectKeyPath,
        "table" => Piece::Table,
        "stream" => Piece::Stream,
        "date_partition" => Piece::DatePartition,
        "partition" => Piece::Partition,
        "run_id" => Piece::RunId,
        "part" => Piece::Part,
        "uuid" => Piece::Uuid,
        "ext" => Piece::Ext,
        "date" | "date:" => {
            return Err("{date} needs a strftime pattern, such as {date:%Y%m%d}".into());
        }
        _ => match inner.strip_prefix("date:") {
            Some(pattern) if is_valid_strftime(pattern) => Piece::Date(pattern.to_owned()),
            Some(_) => {
                return Err(format!(
                    "{{{inner}}} is not a valid strftime pattern (such as {{date:%Y%m%d}})"
                ));
            }
            None => {
                let known: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("{{{p}}}")).collect();
                return Err(format!(
                    "{{{inner}}} is not a placeholder; the placeholders are {}",
                    known.join(" ")
                ));
            }
        },
    };
    Ok(piece)
}

/// The start of `text`, for error messages.
fn cut(text: &str) -> String {
    text.chars().take(24).collect()
}

pub struct KeyBuilder {
    template: KeyTemplate,
    prefix: String,
    table: Option<String>,
    date_partition_format: Option<String>,
    extension: &'static str,
    run_id: String,
    sequence: u64,
    /// The folder each stream's name gave it so far, and the stream's name.
    folders: HashMap<String, String>,
}

/// What the placeholders stand for in one key.
struct Fill<'a> {
    stream: &'a str,
    now: DateTime<Utc>,
    date_partition: bool,
    partition: &'a str,
    extension: &'a str,
}

/// Whether `pattern` is a strftime pattern chrono can format (a date folder's).
pub fn is_valid_strftime(pattern: &str) -> bool {
    !StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error))
}

/// The settings keys are made from.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    pub template: KeyTemplate,
    pub prefix: String,
    /// The `table` setting: every stream's folder name.
    pub table: Option<String>,
    pub date_partition_format: Option<String>,
    /// A data object's file extension (`parquet`, `csv.gz`, …).
    pub extension: &'static str,
}

impl KeyBuilder {
    pub fn new(options: KeyOptions) -> KeyBuilder {
        KeyBuilder {
            template: options.template,
            prefix: options.prefix,
            table: options.table,
            date_partition_format: options.date_partition_format,
            extension: options.extension,
            run_id: random_hex(),
            sequence: 0,
            folders: HashMap::new(),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The key of the next data file under an Iceberg table's data folder (`prefix`
    /// ends with a slash): the run id keeps concurrent writers' files apart.
    pub fn data_file_key(&mut self, prefix: &str) -> String {
        self.sequence += 1;
        format!("{prefix}{}-{:06}.parquet", self.run_id, self.sequence)
    }

    /// The key for the next object of `stream`, written at `now`, in the partition
    /// folders `partition` (empty for none). Refused when S3 could not store it.
    pub fn next_key(
        &mut self,
        stream: &str,
        kind: ObjectKind,
        now: DateTime<Utc>,
        partition: &str,
    ) -> Result<String, String> {
        self.sequence += 1;
        let fill = match kind {
            ObjectKind::Data => Fill {
                stream,
                now,
                date_partition: true,
                partition,
                extension: self.extension,
            },
            ObjectKind::Rejected => Fill {
                stream,
                now,
                date_partition: false,
                partition: "",
                extension: "jsonl",
            },
            ObjectKind::Manifest => Fill {
                stream,
                now,
                date_partition: false,
                partition: "",
                extension: "json",
            },
        };
        let mut text = String::new();
        for piece in &self.template.pieces {
            self.fill(piece, &fill, &mut text);
        }
        let mut segments = segments(&text);
        let folder = match kind {
            ObjectKind::Data => None,
            ObjectKind::Rejected => Some(REJECTED_FOLDER),
            ObjectKind::Manifest => Some(MANIFEST_FOLDER),
        };
        if let Some(folder) = folder {
            segments.insert(segments.len().saturating_sub(1), folder);
        }
        let key = segments.join("/");
        if key.len() > MAX_KEY_BYTES {
            return Err(format!(
                "the key {:?}… would be {} bytes, more than the {MAX_KEY_BYTES} S3 allows; shorten object_key_path or object_key_template, or partition by a shorter field",
                cut(&key),
                key.len()
            ));
        }
        Ok(key)
    }

    /// The fixed leading part of every key of `stream`, ending in `/` (empty when the
    /// template starts with a placeholder that changes from object to object): the
    /// template's text and its {object_key_path}, {table} and {stream} up to the first
    /// other placeholder, cut back to the last `/`. Every object of the stream this run
    /// writes, quarantined records included, has a key under it. Other streams' keys
    /// may be under it too unless `prefix_is_per_stream`.
    pub fn stream_prefix(&self, stream: &str) -> String {
        self.fixed_prefix(stream).0
    }

    /// Whether streams of different names have different `stream_prefix`es: the fixed
    /// part holds {stream}, or {table} with no `table` setting. (The two names the
    /// table rule makes equal, the empty name and `_`, would share one: `claim_folder`
    /// refuses that.)
    pub fn prefix_is_per_stream(&self) -> bool {
        self.fixed_prefix("").1
    }

    /// Whether `stream_prefix` holds the table's folder ({table} or {stream}), so that
    /// what lies under it belongs to that table alone (and to streams sharing a `table`
    /// setting): what `load_method: overwrite` needs before it may delete there.
    pub fn prefix_is_per_table(&self) -> bool {
        self.fixed_prefix("").2
    }

    /// Takes note of `stream`'s folder (the key-safe form of its name, where the
    /// template names the table or stream after it), and refuses a stream whose folder
    /// another stream of the run already has: two streams never mix their objects in
    /// one folder unless the `table` setting puts them there on purpose.
    pub fn claim_folder(&mut self, stream: &str) -> Result<(), String> {
        let by_name =
            self.template.uses("stream") || self.template.uses("table") && self.table.is_none();
        if !by_name {
            return Ok(());
        }
        let folder = table_name(stream);
        match self.folders.get(&folder) {
            Some(other) if other != stream => Err(format!(
                "streams {other:?} and {stream:?} would share the folder {folder:?}; rename one in the tap, or set \"table\" to put streams in one folder on purpose"
            )),
            Some(_) => Ok(()),
            None => {
                self.folders.insert(folder, stream.to_owned());
                Ok(())
            }
        }
    }

    /// The prefix, whether it names the stream, and whether it names the table.
    fn fixed_prefix(&self, stream: &str) -> (String, bool, bool) {
        let fill = Fill {
            stream,
            now: DateTime::UNIX_EPOCH,
            date_partition: false,
            partition: "",
            extension: "",
        };
        let mut text = String::new();
        // Where the first pieces naming the stream and the table end.
        let (mut stream_at, mut table_at) = (None, None);
        for piece in self.template.pieces.iter().take_while(|p| p.is_fixed()) {
            self.fill(piece, &fill, &mut text);
            let names_stream = match piece {
                Piece::Stream => true,
                Piece::Table => self.table.is_none(),
                _ => false,
            };
            if names_stream {
                stream_at.get_or_insert(text.len());
            }
            if matches!(piece, Piece::Stream | Piece::Table) {
                table_at.get_or_insert(text.len());
            }
        }
        let folder = &text[..text.rfind('/').map_or(0, |i| i + 1)];
        let prefix = segments(folder).join("/");
        let within = |at: Option<usize>| at.is_some_and(|at| at <= folder.len());
        let (per_stream, per_table) = (within(stream_at), within(table_at));
        if prefix.is_empty() {
            (prefix, per_stream, per_table)
        } else {
            (prefix + "/", per_stream, per_table)
        }
    }

    fn fill(&self, piece: &Piece, fill: &Fill, out: &mut String) {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::ObjectKeyPath => out.push_str(&self.prefix),
            Piece::Table => out.push_str(&table_name(self.table.as_deref().unwrap_or(fill.stream))),
            Piece::Stream => out.push_str(&table_name(fill.stream)),
            Piece::DatePartition => {
                if let Some(format) = self.date_partition_format.as_ref()
                    && fill.date_partition
                {
                    format_time(fill.now, format, out);
                }
            }
            Piece::Date(format) => format_time(fill.now, format, out),
            Piece::Partition => out.push_str(fill.partition),
            Piece::RunId => out.push_str(&self.run_id),
            Piece::Part => {
                let _ = write!(out, "{:05}", self.sequence);
            }
            Piece::Uuid => out.push_str(&random_uuid()),
            Piece::Ext => out.push_str(fill.extension),
        }
    }
}

/// `time` formatted by a pattern checked at start-up. chrono reports a specifier it
/// cannot fill as a formatting error (never a panic here); the text written before it
/// stays.
fn format_time(time: DateTime<Utc>, format: &str, out: &mut String) {
    let _ = write!(out, "{}", time.format(format));
}

/// The non-empty `/`-separated segments of `text`.
fn segments(text: &str) -> Vec<&str> {
    text.split('/').filter(|s| !s.is_empty()).collect()
}

/// A stream name made safe for one key segment (the rule in the module comment).
pub fn table_name(stream: &str) -> String {
    if stream.is_empty() {
        return "_".to_owned();
    }
    let dots_only = stream.chars().all(|c| c == '.');
    let mut safe = String::with_capacity(stream.len());
    for c in stream.chars() {
        let kept = (c.is_alphanumeric() || matches!(c, '-' | '_' | '.')) && !(dots_only);
        if kept {
            safe.push(c);
        } else {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(safe, "%{b:02X}");
            }
        }
    }
    safe
}

/// 64 random bits from the standard library's per-process random hash keys (a new key
/// on every call), mixed with the clock and process id.
fn random_bits() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn random_hex() -> String {
    format!("{:016x}", random_bits())
}

/// A random UUID in the version 4 layout.
fn random_uuid() -> String {
    let high = (random_bits() & !0xf000) | 0x4000;
    let low = (random_bits() & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> Result<crate::config::Config, String> {
        let mut v =
            json!({"bucket": "b", "file_type": "csv", "object_key_path": "/exports//daily/"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        crate::config::Config::from_map(v.as_object().unwrap())
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    fn builder(extra: serde_json::Value) -> KeyBuilder {
        KeyBuilder::new(config(extra).unwrap().key_options())
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 9, 4, 5, 6).unwrap()
    }

    fn data_key(keys: &mut KeyBuilder, stream: &str, partition: &str) -> String {
        keys.next_key(stream, ObjectKind::Data, at(), partition)
            .unwrap()
    }

    #[test]
    fn layout_with_partition_and_unique_part() {
        let mut keys = builder(json!({"date_partition_format": "year=%Y/month=%m/"}));
        let a = data_key(&mut keys, "public-users", "");
        let b = data_key(&mut keys, "public-users", "");
        let r = keys
            .next_key("public-users", ObjectKind::Rejected, at(), "x=1")
            .unwrap();
        let run = keys.run_id().to_owned();
        assert_eq!(
            r,
            format!("exports/daily/public-users/_rejected/20240309-040506-{run}-00003.jsonl")
        );
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
    fn glue_catalog_takes_table_folders_partition_folders_and_a_file_name() {
        let glue = |template: &str| {
            config(
                json!({"glue_catalog": true, "glue_database": "lake", "object_key_template": template}),
            )
        };
        for good in [
            DEFAULT_TEMPLATE,
            "{object_key_path}/{stream}/{partition}/{uuid}.{ext}",
            "{object_key_path}/raw/{table}/v1/{date_partition}/{date:%H%M}-{run_id}-{part}.{ext}",
            "{object_key_path}-{table}/{run_id}-{part}.{ext}",
        ] {
            assert!(glue(good).is_ok(), "{good}: {:?}", glue(good).err());
        }
        let refused = [
            (
                "{object_key_path}/{date_partition}/{table}/{run_id}-{part}.{ext}",
                "must name the table",
            ),
            (
                "{object_key_path}/{run_id}-{part}.{ext}",
                "must name the table",
            ),
            (
                "{object_key_path}/{table}/{date:%Y}/{run_id}-{part}.{ext}",
                "the folder \"{date:%Y}\"",
            ),
            (
                "{object_key_path}/{table}/{date_partition}/data/{run_id}-{part}.{ext}",
                "the folder \"data\"",
            ),
            (
                "{object_key_path}/{table}/d={date_partition}/{run_id}-{part}.{ext}",
                "the folder \"d={date_partition}\"",
            ),
            (
                "{object_key_path}/{table}/{run_id}/{part}.{ext}",
                "the folder \"{run_id}\"",
            ),
            (
                "{object_key_path}/{table}/{partition}-{run_id}-{part}.{ext}",
                "{partition} is in the file name",
            ),
        ];
        for (template, why) in refused {
            let e = glue(template).unwrap_err();
            assert!(
                e.contains("glue_catalog needs keys laid out") && e.contains(why),
                "{template}: {e}"
            );
        }
    }

    #[test]
    fn default_template_is_the_old_layout() {
        let mut keys = builder(json!({}));
        let run = keys.run_id().to_owned();
        assert_eq!(
            data_key(&mut keys, "s", ""),
            format!("exports/daily/s/20240309-040506-{run}-00001.csv")
        );
        assert_eq!(
            data_key(&mut keys, "s", "country=FR/n=1"),
            format!("exports/daily/s/country=FR/n=1/20240309-040506-{run}-00002.csv")
        );
        let mut keys = builder(json!({"date_partition_format": "%Y%m%d"}));
        let run = keys.run_id().to_owned();
        assert_eq!(
            data_key(&mut keys, "s", "country=FR"),
            format!("exports/daily/s/20240309/country=FR/20240309-040506-{run}-00001.csv")
        );
    }

    #[test]
    fn table_key_and_empty_prefix() {
        let mut keys = builder(json!({"object_key_path": "", "table": "orders"}));
        assert!(data_key(&mut keys, "anything", "").starts_with("orders/20240309-040506-"));
    }

    #[test]
    fn every_placeholder_fills_in() {
        let template = "{object_key_path}/{stream}/{table}/{date:%Y/%m}/{partition}/{uuid}-{run_id}-{part}.{ext}";
        let mut keys = builder(
            json!({"object_key_template": template, "table": "t:x", "partition_by": ["a"]}),
        );
        let key = data_key(&mut keys, "my stream", "a=1");
        let run = keys.run_id().to_owned();
        let (head, file) = key.rsplit_once('/').unwrap();
        assert_eq!(head, "exports/daily/my%20stream/t%3Ax/2024/03/a=1");
        let (uuid, rest) = file.split_at(36);
        assert_eq!(rest, format!("-{run}-00001.csv"));
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&uuid[14..15], "4");
        assert!("89ab".contains(&uuid[19..20]), "{uuid}");
        let next = data_key(&mut keys, "my stream", "a=1");
        assert_ne!(next.rsplit_once('/').unwrap().1[..36], *uuid);
    }

    #[test]
    fn uuid_alone_is_unique_enough() {
        let mut keys = builder(
            json!({"object_key_template": "{object_key_path}/{table}/{uuid}.{ext}", "object_key_path": "p"}),
        );
        let a = data_key(&mut keys, "s", "");
        let b = data_key(&mut keys, "s", "");
        assert_ne!(a, b);
        assert!(a.starts_with("p/s/") && a.ends_with(".csv"), "{a}");
        let r = keys.next_key("s", ObjectKind::Rejected, at(), "").unwrap();
        assert!(
            r.starts_with("p/s/_rejected/") && r.ends_with(".jsonl"),
            "{r}"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        let cases = [
            ("{object_key_path}/{table}/{run_id}-{part", "has no closing"),
            (
                "{object_key_path}/{table}}/{run_id}-{part}",
                "closes no placeholder",
            ),
            (
                "{object_key_path}/{tabel}/{run_id}-{part}",
                "{tabel} is not a placeholder",
            ),
            ("{object_key_path}/{date:%Q}/{run_id}-{part}", "strftime"),
            ("{object_key_path}/{date}/{run_id}-{part}", "strftime"),
            (
                "{object_key_path}/{table}/{date:%Y%m%d}.{ext}",
                "{run_id} and {part}, or {uuid}",
            ),
            (
                "{object_key_path}/{table}/{run_id}.{ext}",
                "{run_id} and {part}, or {uuid}",
            ),
            (
                "{object_key_path}/{table}/{part}.{ext}",
                "{run_id} and {part}, or {uuid}",
            ),
            ("s3://b/{uuid}", "s3://"),
            ("{object_key_path}/{{table}}/{uuid}", "has no closing"),
        ];
        for (template, reason) in cases {
            let e = config(json!({"object_key_template": template})).unwrap_err();
            assert!(
                e.contains("\"object_key_template\"") && e.contains(reason),
                "{template}: {e}"
            );
        }
    }

    #[test]
    fn settings_need_their_placeholder() {
        let template = "{object_key_path}/{stream}/{run_id}-{part}.{ext}";
        for (key, value, placeholder) in [
            ("date_partition_format", json!("%Y"), "{date_partition}"),
            ("table", json!("t"), "{table}"),
            ("partition_by", json!(["a"]), "{partition}"),
        ] {
            let e = config(json!({"object_key_template": template, key: value})).unwrap_err();
            assert!(e.contains(key) && e.contains(placeholder), "{e}");
        }
        let e = config(json!({"object_key_template": "{table}/{uuid}"})).unwrap_err();
        assert!(e.contains("{object_key_path}"), "{e}");
        config(json!({"object_key_template": "{table}/{uuid}", "object_key_path": ""})).unwrap();
    }

    #[test]
    fn long_keys_are_refused() {
        let mut keys = builder(json!({"partition_by": ["a"]}));
        let long = format!("a={}", "x".repeat(1100));
        let e = keys
            .next_key("s", ObjectKind::Data, at(), &long)
            .unwrap_err();
        assert!(e.contains("1024"), "{e}");
    }

    #[test]
    fn stream_prefixes() {
        let prefix = |extra: serde_json::Value| {
            let keys = builder(extra);
            (keys.stream_prefix("a:b"), keys.prefix_is_per_stream())
        };
        assert_eq!(prefix(json!({})), ("exports/daily/a%3Ab/".into(), true));
        assert_eq!(
            prefix(json!({"table": "orders", "date_partition_format": "%Y"})),
            ("exports/daily/orders/".into(), false)
        );
        let template = |t: &str| json!({"object_key_template": t});
        assert_eq!(
            prefix(template(
                "{object_key_path}/x/{stream}/{table}-{date:%Y}/{uuid}"
            )),
            ("exports/daily/x/a%3Ab/".into(), true)
        );
        assert_eq!(
            prefix(template("{object_key_path}/{table}-{date:%Y}/{uuid}")),
            ("exports/daily/".into(), false)
        );
        assert_eq!(
            prefix(template("{object_key_path}/{date:%Y}/{table}/{uuid}")),
            ("exports/daily/".into(), false)
        );
        assert_eq!(
            prefix(json!({"object_key_template": "{uuid}/{table}", "object_key_path": ""})),
            ("".into(), false)
        );
        assert_eq!(
            prefix(template("{object_key_path}//{table}//{run_id}/{part}")),
            ("exports/daily/a%3Ab/".into(), true)
        );
    }

    #[test]
    fn keys_start_with_their_stream_prefix() {
        for template in [
            DEFAULT_TEMPLATE,
            "{object_key_path}/{table}/{run_id}/{part}/data.{ext}",
            "{object_key_path}/{date:%Y}/{stream}/{partition}/{uuid}.{ext}",
        ] {
            let mut settings = json!({ "object_key_template": template });
            if template.contains("{partition}") {
                settings["partition_by"] = json!(["a"]);
            }
            if template.contains("{date_partition}") {
                settings["date_partition_format"] = json!("%d");
            }
            let mut keys = builder(settings);
            let prefix = keys.stream_prefix("s");
            for kind in [ObjectKind::Data, ObjectKind::Rejected] {
                let key = keys.next_key("s", kind, at(), "a=1").unwrap();
                assert!(key.starts_with(&prefix), "{template}: {key} / {prefix}");
            }
        }
    }

    #[test]
    fn every_key_of_a_stream_starts_with_its_prefix() {
        let now = Utc.with_ymd_and_hms(2024, 3, 9, 4, 5, 6).unwrap();
        let mut keys = builder(json!({"date_partition_format": "%Y/%m"}));
        assert_eq!(keys.stream_prefix("a:b"), "exports/daily/a%3Ab/");
        for kind in [ObjectKind::Data, ObjectKind::Rejected, ObjectKind::Manifest] {
            let key = keys.next_key("a:b", kind, now, "").unwrap();
            assert!(key.starts_with("exports/daily/a%3Ab/"), "{key}");
        }
        let manifest = keys.next_key("a", ObjectKind::Manifest, now, "").unwrap();
        assert!(
            manifest.starts_with("exports/daily/a/_manifests/20240309-040506-")
                && manifest.ends_with(".json"),
            "{manifest}"
        );
        let bare = builder(json!({"object_key_path": ""}));
        assert_eq!(bare.stream_prefix("s"), "s/");
        let shared = builder(json!({"table": "orders"}));
        assert_eq!(shared.stream_prefix("x"), shared.stream_prefix("y"));
        assert!(shared.prefix_is_per_table() && !shared.prefix_is_per_stream());
        let dated =
            builder(json!({"object_key_template": "{object_key_path}/{date:%Y}/{table}/{uuid}"}));
        assert!(!dated.prefix_is_per_table());
    }

    #[test]
    fn run_ids_differ() {
        assert_ne!(random_hex(), random_hex());
        assert_ne!(random_uuid(), random_uuid());
    }

    #[test]
    fn table_names_are_key_safe() {
        assert_eq!(
            table_name("test:SpecialChars!in?attributes"),
            "test%3ASpecialChars%21in%3Fattributes"
        );
        assert_eq!(table_name("a/b c"), "a%2Fb%20c");
        assert_eq!(table_name("a%2Fb"), "a%252Fb");
        assert_eq!(table_name("naïve"), "naïve");
        assert_eq!(table_name("Продажи"), "Продажи");
        assert_eq!(table_name("e\u{301}"), "e%CC%81");
        assert_eq!(table_name(".."), "%2E%2E");
        assert_eq!(table_name("a..b"), "a..b");
        assert_eq!(table_name(""), "_");
        assert_eq!(table_name("public-users.v2"), "public-users.v2");
        assert_ne!(table_name("a/b"), table_name("a_b"));
        assert_ne!(table_name("é"), table_name("ü"));
    }

    /// The rule is reversible: decoding the percent escapes gives the name back.
    #[test]
    fn table_names_decode_back() {
        let decode = |safe: &str| {
            let mut bytes = Vec::new();
            let mut rest = safe.as_bytes();
            while let Some((&b, tail)) = rest.split_first() {
                if b == b'%' {
                    let hex = std::str::from_utf8(&tail[..2]).unwrap();
                    bytes.push(u8::from_str_radix(hex, 16).unwrap());
                    rest = &tail[2..];
                } else {
                    bytes.push(b);
                    rest = tail;
                }
            }
            String::from_utf8(bytes).unwrap()
        };
        for name in [
            "a/b",
            "a_b",
            "Клиенты",
            "x%y",
            "..",
            "tab\there",
            "日本語 テーブル",
            "a:b=c",
        ] {
            assert_eq!(decode(&table_name(name)), name);
        }
    }

    #[test]
    fn streams_sharing_a_folder_are_refused_unless_table_says_so() {
        let mut keys = builder(json!({}));
        keys.claim_folder("Продажи").unwrap();
        keys.claim_folder("Клиенты").unwrap();
        keys.claim_folder("Продажи").unwrap();
        keys.claim_folder("_").unwrap();
        let e = keys.claim_folder("").unwrap_err();
        assert!(
            e.contains(r#"streams "_" and """#) && e.contains("table"),
            "{e}"
        );
        let mut shared = builder(json!({"table": "orders"}));
        shared.claim_folder("_").unwrap();
        shared.claim_folder("").unwrap();
    }
}
