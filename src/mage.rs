//! Mage mode: the conventions of Mage's runner, which calls a destination as
//! `python3 <destination>/__init__.py --log_to_stdout 1 --state FILE --input_file_path FILE
//! [--catalog_json JSON] --config_json JSON`.
//!
//! Owns: when Mage mode is on, the settings as Mage's UI saves them (empty strings unset,
//! Mage's defaults), the stream catalog of `--catalog_json` (selected columns and their
//! types), and what to make of input lines that are not Singer messages (Mage's input
//! file also holds the source's stderr: plain text and LOG lines).
//! Must not touch: validation of values (`config`), how columns are typed (`schema`),
//! the run itself (`target`), or how log lines are written (`main`).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// Mage's defaults for its Amazon S3 destination, as its `--show_templates` shows them.
pub const DEFAULTS: &[(&str, &str)] = &[("file_type", "parquet"), ("aws_region", "us-west-2")];

/// How target-s3 was called, as far as Mage mode cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Invocation {
    pub log_to_stdout: bool,
    pub input_file: bool,
    pub config_json: bool,
    pub test_connection: bool,
}

impl Invocation {
    /// Whether the flags are those Mage's runner passes: a load logs to stdout and names
    /// its input file or config text; a connection test passes the config text.
    pub fn is_mage(self) -> bool {
        (self.log_to_stdout && (self.input_file || self.config_json))
            || (self.test_connection && self.config_json)
    }
}

/// Whether Mage mode is on: an explicit `mage_mode` wins; else Mage's invocation.
pub fn mode(settings: Option<&Map<String, Value>>, invocation: Invocation) -> bool {
    settings
        .and_then(|s| s.get("mage_mode"))
        .and_then(as_boolean)
        .unwrap_or_else(|| invocation.is_mage())
}

/// The settings as Mage mode reads them: Mage's UI saves a cleared field as `""`, which
/// means unset; Mage's defaults fill what is absent; a connection test needs only the
/// bucket and credentials, so the key prefix may be absent then.
pub fn settings(mut map: Map<String, Value>, test_connection: bool) -> Map<String, Value> {
    map.retain(|_, value| value.as_str() != Some(""));
    let absent = |map: &Map<String, Value>, key: &str| map.get(key).is_none_or(Value::is_null);
    // A local folder takes no region (and would warn about one).
    let local = map
        .get("aws_endpoint")
        .and_then(Value::as_str)
        .is_some_and(|e| e.starts_with("file://"));
    for (key, value) in DEFAULTS {
        if absent(&map, key) && !(local && *key == "aws_region") {
            map.insert((*key).to_owned(), Value::from(*value));
        }
    }
    if absent(&map, "mage_mode") {
        map.insert("mage_mode".into(), Value::Bool(true));
    }
    if test_connection && absent(&map, "object_key_path") {
        map.insert("object_key_path".into(), Value::from(""));
    }
    map
}

/// `--catalog_json`: the streams' columns as the Mage pipeline selected them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    streams: Vec<CatalogStream>,
}

#[derive(Debug, Clone, PartialEq)]
struct CatalogStream {
    /// `tap_stream_id` and `stream`.
    names: Vec<String>,
    /// The catalog's `schema.properties`: the columns and their types.
    properties: Map<String, Value>,
    /// Columns whose metadata (breadcrumb `["properties", name]`) says `selected: false`.
    deselected: HashSet<String>,
}

impl Catalog {
    /// Reads Mage's catalog: `{"streams": [{"tap_stream_id", "stream", "schema":
    /// {"properties": {...}}, "metadata": [{"breadcrumb": [...], "metadata": {"selected"}}]}]}`.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("--catalog_json is not JSON: {e}"))?;
        let Value::Object(catalog) = value else {
            return Err("--catalog_json must be a JSON object with \"streams\"".into());
        };
        let streams = match catalog.get("streams") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(streams)) => streams
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    CatalogStream::parse(s).map_err(|e| format!("--catalog_json streams[{i}]: {e}"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("--catalog_json: \"streams\" must be an array".into()),
        };
        Ok(Catalog { streams })
    }

    fn find(&self, stream: &str) -> Option<&CatalogStream> {
        let named = self
            .streams
            .iter()
            .find(|s| s.names.iter().any(|n| n == stream));
        match (named, self.streams.as_slice()) {
            (Some(found), _) => Some(found),
            // One stream without a name: Mage's catalog for the one stream it runs.
            (None, [only]) if only.names.is_empty() => Some(only),
            _ => None,
        }
    }

    /// A SCHEMA's properties and key properties as the catalog selects them: its
    /// deselected columns dropped (and, when it lists columns, those it does not list),
    /// its columns' types in place of the SCHEMA's, its columns the SCHEMA lacks added.
    /// None when the catalog does not name the stream.
    pub fn select(
        &self,
        stream: &str,
        properties: &Map<String, Value>,
        keys: &[String],
    ) -> Option<(Map<String, Value>, Vec<String>)> {
        let entry = self.find(stream)?;
        let selected = |name: &str| {
            !entry.deselected.contains(name)
                && (entry.properties.is_empty() || entry.properties.contains_key(name))
        };
        let mut out = Map::new();
        for (name, property) in properties.iter().chain(&entry.properties) {
            if selected(name) && !out.contains_key(name) {
                let typed = entry.properties.get(name).unwrap_or(property);
                out.insert(name.clone(), typed.clone());
            }
        }
        let keys = keys
            .iter()
            .filter(|k| out.contains_key(*k))
            .cloned()
            .collect();
        Some((out, keys))
    }
}

impl CatalogStream {
    fn parse(value: &Value) -> Result<CatalogStream, String> {
        let Value::Object(stream) = value else {
            return Err("expected an object".into());
        };
        let names = ["tap_stream_id", "stream"]
            .iter()
            .filter_map(|k| stream.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let properties = match stream.get("schema").and_then(|s| s.get("properties")) {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err("\"schema.properties\" must be an object".into()),
        };
        let mut deselected = HashSet::new();
        let entries = match stream.get("metadata") {
            Some(Value::Array(entries)) => entries.as_slice(),
            _ => &[],
        };
        for entry in entries {
            let crumb = entry.get("breadcrumb").and_then(Value::as_array);
            let column = match crumb.map(Vec::as_slice) {
                Some([Value::String(p), Value::String(column)]) if p == "properties" => column,
                _ => continue,
            };
            let selected = entry.get("metadata").and_then(|m| m.get("selected"));
            if selected.and_then(as_boolean) == Some(false) {
                deselected.insert(column.clone());
            }
        }
        Ok(CatalogStream {
            names,
            properties,
            deselected,
        })
    }
}

/// What an input line that is not a Singer message is, in Mage mode.
#[derive(Debug, PartialEq, Eq)]
pub enum Aside {
    /// Skipped and counted: not a JSON object at all (log text, a traceback), or a LOG
    /// line with no message.
    Skip,
    /// A log line of the source: relayed to the log.
    Log { level: String, message: String },
}

/// A line the protocol could not take: what it is, if Mage mode lets it pass. A line
/// that starts like a JSON object must be one: a broken one is still an error.
pub fn aside(line: &str) -> Option<Aside> {
    if !line.starts_with('{') {
        return Some(Aside::Skip);
    }
    let value: Value = serde_json::from_str(line).ok()?;
    if value.get("type").is_some() {
        return None;
    }
    log_of(&value)
}

/// A `{"type": "LOG", "level", "message", ...}` line: a log line to relay, or nothing to
/// say (Mage's own destination passes over LOG lines).
pub fn log_line(line: &str) -> Aside {
    let value: Option<Value> = serde_json::from_str(line).ok();
    value.as_ref().and_then(log_of).unwrap_or(Aside::Skip)
}

fn log_of(value: &Value) -> Option<Aside> {
    let text = |key: &str| match value.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    Some(Aside::Log {
        level: text("level").unwrap_or_else(|| "INFO".into()),
        message: text("message")?,
    })
}

/// Writes a source's log line to the log. Its errors go out as warnings: the source
/// has already run, and an ERROR line would make Mage's runner fail this block.
pub fn relay(line: u64, level: &str, message: &str) {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" => tracing::debug!("input line {line}, source log: {message}"),
        "INFO" => tracing::info!("input line {line}, source log: {message}"),
        other => tracing::warn!("input line {line}, source log ({other}): {message}"),
    }
}

/// `true`, `false`, or those words as strings (any case): Mage's catalogs write
/// booleans both ways, and settings take the same forms.
pub fn as_boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn mode_follows_the_invocation_unless_the_setting_says() {
        let load = Invocation {
            log_to_stdout: true,
            input_file: true,
            ..Invocation::default()
        };
        let test = Invocation {
            test_connection: true,
            config_json: true,
            ..Invocation::default()
        };
        let plain = Invocation {
            config_json: true,
            ..Invocation::default()
        };
        assert!(mode(None, load) && mode(None, test) && !mode(None, plain));
        let off = object(json!({"mage_mode": false}));
        let on = object(json!({"mage_mode": "true"}));
        assert!(!mode(Some(&off), load) && mode(Some(&on), plain));
    }

    #[test]
    fn settings_drop_empty_strings_and_take_mages_defaults() {
        let map = object(
            json!({"role_arn": "", "bucket": "b", "csv_null_text": " ", "aws_region": null}),
        );
        let shaped = settings(map, true);
        assert!(!shaped.contains_key("role_arn"));
        assert_eq!(shaped["csv_null_text"], " ");
        assert_eq!(shaped["aws_region"], "us-west-2");
        assert_eq!(shaped["file_type"], "parquet");
        assert_eq!(shaped["mage_mode"], true);
        assert_eq!(shaped["object_key_path"], "");
        let kept = settings(
            object(json!({"file_type": "csv", "mage_mode": false})),
            false,
        );
        assert_eq!(kept["file_type"], "csv");
        assert_eq!(kept["mage_mode"], false);
        assert!(!kept.contains_key("object_key_path"));
    }

    #[test]
    fn catalog_selects_columns_and_types() {
        let catalog = Catalog::parse(
            &json!({"streams": [{"tap_stream_id": "users", "stream": "users",
                "schema": {"properties": {"id": {"type": "string"}, "name": {"type": "string"},
                    "extra": {"type": "integer"}}},
                "metadata": [{"breadcrumb": [], "metadata": {"selected": true}},
                    {"breadcrumb": ["properties", "name"], "metadata": {"selected": false}}]}]})
            .to_string(),
        )
        .unwrap();
        let properties = object(
            json!({"id": {"type": "integer"}, "name": {"type": "string"},
            "email": {"type": "string"}}),
        );
        let keys = vec!["id".to_owned(), "name".to_owned()];
        let (selected, keys) = catalog.select("users", &properties, &keys).unwrap();
        assert_eq!(
            Value::Object(selected),
            json!({"id": {"type": "string"}, "extra": {"type": "integer"}})
        );
        assert_eq!(keys, ["id"]);
        assert!(catalog.select("orders", &properties, &[]).is_none());
        // Metadata alone: every SCHEMA column but the deselected ones.
        let catalog = Catalog::parse(
            r#"{"streams": [{"stream": "users", "metadata": [{"breadcrumb": ["properties", "email"], "metadata": {"selected": false}}]}]}"#,
        )
        .unwrap();
        let (selected, _) = catalog.select("users", &properties, &[]).unwrap();
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["id", "name"]);
        assert_eq!(Catalog::parse("{}").unwrap(), Catalog::default());
        assert!(Catalog::parse("[]").is_err());
        assert!(Catalog::parse(r#"{"streams": {}}"#).is_err());
    }

    #[test]
    fn lines_that_are_not_singer_messages() {
        assert_eq!(
            aside("Traceback (most recent call last):"),
            Some(Aside::Skip)
        );
        assert_eq!(aside("42"), Some(Aside::Skip));
        let log = aside(r#"{"level": "INFO", "message": "hello"}"#);
        assert_eq!(
            log,
            Some(Aside::Log {
                level: "INFO".into(),
                message: "hello".into()
            })
        );
        assert_eq!(aside(r#"{"level": "INFO""#), None, "a broken object");
        assert_eq!(aside(r#"{"stream": "s"}"#), None, "no type and no message");
        assert_eq!(aside(r#"{"type": "RECORD", "message": "x"}"#), None);
        let typed =
            log_line(r#"{"type": "LOG", "level": "ERROR", "message": "boom", "timestamp": 1}"#);
        assert!(matches!(typed, Aside::Log { level, .. } if level == "ERROR"));
        assert_eq!(log_line(r#"{"type": "LOG", "level": "INFO"}"#), Aside::Skip);
    }
}
