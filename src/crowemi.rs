//! crowemi/target-s3's settings (Meltano Hub's default `target-s3`), read as another
//! spelling of ours, so its users switch without rewriting their configs.
//!
//! Owns: turning its nested keys (`format.format_type`, `cloud_provider.aws.aws_bucket`,
//! …) and its key-layout flags (`append_date_to_prefix`, `append_date_to_filename`, their
//! grains, `partition_name_enabled`, `use_raw_stream_name`) into our settings; the
//! warnings for its keys that mean nothing here; the error when one setting is given
//! in both spellings with different values. Its flat keys that are plain renames
//! (`prefix`, `stream_name_path_override`, `max_batch_size`) are aliases in `config`.
//! Must not touch: validation of the values produced, which `config` does as for any
//! other setting, so an error names our key and the value given.
//!
//! Where its layout would overwrite objects (a file named by the day alone), ours keeps
//! its date in the name and adds the run id and a sequence, as every key of ours does.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// Its keys that mark a config written for it: with one of them, its defaults for the
/// key layout apply to what the config leaves out (a date folder and a dated file name
/// by the day), as they did there.
const DIALECT_KEYS: &[&str] = &["format", "cloud_provider"];

/// Its top-level keys this module reads (and removes).
const FLAT_KEYS: &[&str] = &[
    "append_date_to_prefix",
    "append_date_to_prefix_grain",
    "partition_name_enabled",
    "append_date_to_filename",
    "append_date_to_filename_grain",
    "use_raw_stream_name",
    "flattening_enabled",
    "flattening_max_depth",
    "max_batch_age",
    "flatten_records",
];

/// Its `cloud_provider.aws` keys and ours for each.
const AWS_KEYS: &[(&str, &str)] = &[
    ("aws_access_key_id", "aws_access_key_id"),
    ("aws_secret_access_key", "aws_secret_access_key"),
    ("aws_session_token", "aws_session_token"),
    ("aws_region", "aws_region"),
    ("aws_profile_name", "aws_profile"),
    ("aws_bucket", "bucket"),
    ("aws_endpoint_override", "aws_endpoint"),
];

/// Its date grains, coarsest first.
pub const GRAINS: &[&str] = &[
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "microsecond",
];

/// One of our settings, as their config says it.
#[derive(Debug, PartialEq)]
struct Mapped {
    ours: &'static str,
    value: Value,
    /// Their key (dotted for nested keys), for messages.
    theirs: String,
    /// Not said by the config but following from it (their defaults, their gzip): our
    /// own key, when given, wins without an error.
    implied: bool,
}

/// Our settings for a config that may use their keys: their keys replaced by ours, and
/// one warning per key of theirs that means nothing here. `is_default` tells whether
/// our key holds its default (Meltano passes every default), which counts as not given.
pub fn translate(
    map: &Map<String, Value>,
    is_default: impl Fn(&str, &Value) -> bool,
) -> Result<(Map<String, Value>, Vec<String>)> {
    let dialect = DIALECT_KEYS.iter().any(|k| map.contains_key(*k));
    if !dialect && !FLAT_KEYS.iter().any(|k| map.contains_key(*k)) {
        return Ok((map.clone(), Vec::new()));
    }
    let mut warnings = Vec::new();
    let mut mapped = Vec::new();
    if let Some(format) = map.get("format") {
        mapped.extend(format_keys(format, &mut warnings)?);
    }
    if let Some(provider) = map.get("cloud_provider") {
        mapped.extend(provider_keys(provider, &mut warnings)?);
    }
    mapped.extend(layout_keys(map, dialect)?);
    mapped.extend(flattening_keys(map)?);
    if let Some(minutes) = given(map, "max_batch_age") {
        mapped.push(explicit(
            "max_batch_age_seconds",
            json!(age_seconds(minutes)?),
            "max_batch_age",
        ));
    }
    if given(map, "flatten_records").is_some() {
        warnings.push(no_meaning(
            "flatten_records",
            "flattening_enabled and flattening_max_depth say how deep to flatten",
        ));
    }
    let mut out = map.clone();
    for key in DIALECT_KEYS.iter().chain(FLAT_KEYS) {
        out.remove(*key);
    }
    for m in mapped {
        apply(&mut out, m, &is_default)?;
    }
    Ok((out, warnings))
}

/// Sets our key, unless the config gives it too: the same value is fine, another is an
/// error naming both keys (an implied value gives way instead).
fn apply(
    out: &mut Map<String, Value>,
    m: Mapped,
    is_default: &impl Fn(&str, &Value) -> bool,
) -> Result<()> {
    let own = out
        .get(m.ours)
        .filter(|v| !v.is_null() && !is_default(m.ours, v));
    match own {
        Some(own) if text(own) == text(&m.value) => Ok(()),
        Some(_) if m.implied => Ok(()),
        Some(own) => Err(Error::Config(format!(
            "keys {:?} and {:?} (crowemi/target-s3's name for it) are both set, to {own} and {}; keep one",
            m.ours, m.theirs, m.value
        ))),
        None => {
            out.insert(m.ours.to_owned(), m.value);
            Ok(())
        }
    }
}

/// A value as text, so `"300"` (from an environment variable) equals `300`.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn explicit(ours: &'static str, value: Value, theirs: &str) -> Mapped {
    Mapped {
        ours,
        value,
        theirs: theirs.to_owned(),
        implied: false,
    }
}

fn implied(ours: &'static str, value: Value, theirs: &str) -> Mapped {
    Mapped {
        implied: true,
        ..explicit(ours, value, theirs)
    }
}

fn no_meaning(key: &str, why: &str) -> String {
    format!("config: key {key:?} (crowemi/target-s3) has no meaning here and is ignored: {why}")
}

/// A key that is present and not null.
fn given<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn object<'a>(value: &'a Value, key: &str) -> Result<&'a Map<String, Value>> {
    value.as_object().ok_or_else(|| {
        Error::Config(format!(
            "key {key:?} has value {value}; expected an object of settings"
        ))
    })
}

/// `format`: `format_type` (json and jsonl are gzip'd JSON lines, as theirs gzip'd both)
/// and the options of theirs that mean nothing here.
fn format_keys(format: &Value, warnings: &mut Vec<String>) -> Result<Vec<Mapped>> {
    let mut mapped = Vec::new();
    for (key, value) in object(format, "format")? {
        let theirs = format!("format.{key}");
        match key.as_str() {
            "format_type" => {
                let kind = value.as_str().unwrap_or_default().to_ascii_lowercase();
                let file_type = match kind.as_str() {
                    "parquet" => "parquet",
                    "csv" => "csv",
                    "json" | "jsonl" => "jsonl",
                    _ => {
                        return Err(Error::Config(format!(
                            "key \"format.format_type\" has value {value}; allowed: \"parquet\", \"json\" or \"jsonl\" (both written as JSON lines), \"csv\""
                        )));
                    }
                };
                mapped.push(explicit("file_type", json!(file_type), &theirs));
                if file_type == "jsonl" {
                    mapped.push(implied("compression", json!("gzip"), &theirs));
                }
            }
            _ => warnings.extend(unused_options(&theirs, value)),
        }
    }
    Ok(mapped)
}

/// Warnings for `format.format_parquet.validate` and the like: every option set in an
/// options object (an empty `format_json: {}` says nothing).
fn unused_options(key: &str, value: &Value) -> Vec<String> {
    let why = "columns are always typed from the stream's SCHEMA";
    match value {
        Value::Object(options) => options
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(name, _)| no_meaning(&format!("{key}.{name}"), why))
            .collect(),
        Value::Null => Vec::new(),
        _ => vec![no_meaning(key, why)],
    }
}

/// `cloud_provider`: AWS only, and its `aws` keys as ours.
fn provider_keys(provider: &Value, warnings: &mut Vec<String>) -> Result<Vec<Mapped>> {
    let provider = object(provider, "cloud_provider")?;
    let kind = provider.get("cloud_provider_type").filter(|v| !v.is_null());
    if let Some(kind) = kind.filter(|k| !k.as_str().is_some_and(|k| k.eq_ignore_ascii_case("aws")))
    {
        return Err(Error::Config(format!(
            "key \"cloud_provider.cloud_provider_type\" has value {kind}; target-s3 writes to Amazon S3 and S3-compatible stores only: allowed \"aws\""
        )));
    }
    let mut mapped = Vec::new();
    for (key, value) in provider {
        match key.as_str() {
            "cloud_provider_type" => {}
            "aws" => {
                for (name, value) in object(value, "cloud_provider.aws")? {
                    let theirs = format!("cloud_provider.aws.{name}");
                    match AWS_KEYS.iter().find(|(t, _)| t == name) {
                        Some(_) if value.is_null() => {}
                        Some((_, ours)) => mapped.push(explicit(ours, value.clone(), &theirs)),
                        None => warnings.push(no_meaning(&theirs, "not a setting there either")),
                    }
                }
            }
            other => warnings.push(no_meaning(
                &format!("cloud_provider.{other}"),
                "only the aws provider is read",
            )),
        }
    }
    Ok(mapped)
}

/// Their key layout: `<prefix>/<stream>/<date folders>/<date>.<ext>`, with the date
/// folders from `append_date_to_prefix` (`2024/03/05/`, or `year=2024/month=03/day=05/`
/// with `partition_name_enabled`) and the file's date from `append_date_to_filename`,
/// each to its grain; or `<prefix>/<stream>` alone with `use_raw_stream_name`. Ours is
/// the same but for the file name, which also holds the run id and a sequence number.
fn layout_keys(map: &Map<String, Value>, dialect: bool) -> Result<Vec<Mapped>> {
    const PREFIX_KEYS: &[&str] = &[
        "append_date_to_prefix",
        "append_date_to_prefix_grain",
        "partition_name_enabled",
    ];
    const FILE_KEYS: &[&str] = &["append_date_to_filename", "append_date_to_filename_grain"];
    let said = |keys: &[&'static str]| keys.iter().find(|k| given(map, k).is_some()).copied();
    if flag(map, "use_raw_stream_name", false)? {
        let template = "{object_key_path}/{stream}/{run_id}-{part}.{ext}";
        return Ok(vec![explicit(
            "object_key_template",
            json!(template),
            "use_raw_stream_name",
        )]);
    }
    let mut mapped = Vec::new();
    let (prefix_said, file_said) = (said(PREFIX_KEYS), said(FILE_KEYS));
    if dialect || prefix_said.is_some() {
        let theirs = prefix_said.unwrap_or("append_date_to_prefix");
        if flag(map, "append_date_to_prefix", true)? {
            let grain = grain(map, "append_date_to_prefix_grain")?;
            let named = flag(map, "partition_name_enabled", false)?;
            let folders = folder_format(grain, named);
            let m = explicit("date_partition_format", json!(folders), theirs);
            mapped.push(Mapped {
                implied: prefix_said.is_none(),
                ..m
            });
        }
    }
    if dialect || file_said.is_some() {
        let theirs = file_said.unwrap_or("append_date_to_filename");
        let date = match flag(map, "append_date_to_filename", true)? {
            true => format!(
                "{{date:{}}}-",
                file_format(grain(map, "append_date_to_filename_grain")?)
            ),
            false => String::new(),
        };
        let template = format!(
            "{{object_key_path}}/{{table}}/{{date_partition}}/{{partition}}/{date}{{run_id}}-{{part}}.{{ext}}"
        );
        let m = explicit("object_key_template", json!(template), theirs);
        mapped.push(Mapped {
            implied: file_said.is_none(),
            ..m
        });
    }
    Ok(mapped)
}

/// A boolean of theirs (true/false or their text), or its default when absent.
fn flag(map: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match given(map, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(Error::Config(format!(
            "key {key:?} has value {other}; expected true or false"
        ))),
    }
}

/// A grain of theirs, as the index into `GRAINS` (their default: day).
fn grain(map: &Map<String, Value>, key: &str) -> Result<usize> {
    let Some(value) = given(map, key) else {
        return Ok(2);
    };
    let word = value.as_str().unwrap_or_default().to_ascii_lowercase();
    GRAINS.iter().position(|g| *g == word).ok_or_else(|| {
        Error::Config(format!(
            "key {key:?} has value {value}; allowed: {}",
            GRAINS.join(", ")
        ))
    })
}

/// Date folders down to the grain: `%Y/%m/%d`, or `year=%Y/month=%m/day=%d` when named.
/// Microseconds are six digits, zero-padded.
fn folder_format(grain: usize, named: bool) -> String {
    const PARTS: &[&str] = &["%Y", "%m", "%d", "%H", "%M", "%S", "%6f"];
    PARTS[..=grain]
        .iter()
        .zip(GRAINS)
        .map(|(part, name)| match named {
            true => format!("{name}={part}"),
            false => (*part).to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The file name's date down to the grain, as theirs: `%Y%m%d`, `%Y%m%d-%H%M%S`, …
fn file_format(grain: usize) -> String {
    const PARTS: &[&str] = &["%Y", "%m", "%d", "-%H", "%M", "%S", "%6f"];
    PARTS[..=grain].concat()
}

/// `flattening_enabled` with `flattening_max_depth` (which the Singer SDK requires with
/// it) is our `flatten_max_depth`; the same `parent__child` column names.
fn flattening_keys(map: &Map<String, Value>) -> Result<Vec<Mapped>> {
    if !flag(map, "flattening_enabled", false)? {
        return Ok(Vec::new());
    }
    match given(map, "flattening_max_depth") {
        Some(depth) => Ok(vec![explicit(
            "flatten_max_depth",
            depth.clone(),
            "flattening_max_depth",
        )]),
        None => Err(Error::Config(
            "key \"flattening_enabled\" is true but \"flattening_max_depth\" is not set; give it, e.g. \"flattening_max_depth\": 1".into(),
        )),
    }
}

/// Their `max_batch_age` is in minutes (a number); ours in whole seconds, at least one.
fn age_seconds(minutes: &Value) -> Result<u64> {
    let value = match minutes {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(m) if m.is_finite() && m > 0.0 => Ok(((m * 60.0).ceil() as u64).max(1)),
        _ => Err(Error::Config(format!(
            "key \"max_batch_age\" has value {minutes}; expected a number of minutes above 0"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_default(_: &str, _: &Value) -> bool {
        false
    }

    fn run(config: Value) -> Result<(Map<String, Value>, Vec<String>)> {
        translate(config.as_object().unwrap(), never_default)
    }

    #[test]
    fn their_readme_sample_becomes_ours() {
        let (ours, warnings) = run(json!({
            "format": {"format_type": "json", "format_parquet": {"validate": false}, "format_json": {}, "format_csv": {}},
            "cloud_provider": {"cloud_provider_type": "aws", "aws": {
                "aws_access_key_id": "k", "aws_secret_access_key": "s", "aws_session_token": "t",
                "aws_region": "us-west-2", "aws_profile_name": "p", "aws_bucket": "b",
                "aws_endpoint_override": "http://localhost:4566"}},
            "prefix": "path/to/output",
            "append_date_to_prefix": false, "partition_name_enabled": false,
            "append_date_to_prefix_grain": "day", "append_date_to_filename": true,
            "append_date_to_filename_grain": "microsecond", "flattening_enabled": false,
            "flattening_max_depth": 1, "max_batch_age": 5, "max_batch_size": 10000
        }))
        .unwrap();
        assert_eq!(ours["file_type"], "jsonl");
        assert_eq!(ours["compression"], "gzip");
        assert_eq!(ours["bucket"], "b");
        assert_eq!(ours["aws_profile"], "p");
        assert_eq!(ours["aws_endpoint"], "http://localhost:4566");
        assert_eq!(ours["aws_session_token"], "t");
        assert_eq!(ours["max_batch_age_seconds"], 300);
        assert_eq!(
            ours["object_key_template"],
            "{object_key_path}/{table}/{date_partition}/{partition}/{date:%Y%m%d-%H%M%S%6f}-{run_id}-{part}.{ext}"
        );
        assert!(!ours.contains_key("date_partition_format"));
        assert!(!ours.contains_key("flatten_max_depth"));
        // Plain renames stay for config's aliases.
        assert_eq!(ours["prefix"], "path/to/output");
        for gone in [
            "format",
            "cloud_provider",
            "append_date_to_prefix",
            "max_batch_age",
        ] {
            assert!(!ours.contains_key(gone), "{gone}");
        }
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("\"format.format_parquet.validate\""));
    }

    #[test]
    fn their_defaults_give_day_folders_and_dated_names() {
        let (ours, _) = run(json!({"cloud_provider": {"aws": {"aws_bucket": "b"}}})).unwrap();
        assert_eq!(ours["date_partition_format"], "%Y/%m/%d");
        assert!(
            ours["object_key_template"]
                .as_str()
                .unwrap()
                .contains("/{date:%Y%m%d}-{run_id}-{part}.{ext}")
        );
        // Their defaults give way to our own keys.
        let (ours, _) =
            run(json!({"format": {"format_type": "parquet"}, "date_partition_format": "%Y"}))
                .unwrap();
        assert_eq!(ours["date_partition_format"], "%Y");
    }

    #[test]
    fn grains_and_partition_names() {
        assert_eq!(folder_format(0, false), "%Y");
        assert_eq!(folder_format(3, true), "year=%Y/month=%m/day=%d/hour=%H");
        assert_eq!(
            folder_format(6, true),
            "year=%Y/month=%m/day=%d/hour=%H/minute=%M/second=%S/microsecond=%6f"
        );
        assert_eq!(file_format(1), "%Y%m");
        assert_eq!(file_format(5), "%Y%m%d-%H%M%S");
        let (ours, _) =
            run(json!({"append_date_to_prefix_grain": "Month", "partition_name_enabled": true}))
                .unwrap();
        assert_eq!(ours["date_partition_format"], "year=%Y/month=%m");
        let err = run(json!({"append_date_to_filename_grain": "week"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"append_date_to_filename_grain\" has value \"week\""),
            "{err}"
        );
        assert!(
            err.contains("year, month, day, hour, minute, second, microsecond"),
            "{err}"
        );
    }

    #[test]
    fn raw_stream_name_is_the_folder_alone() {
        let (ours, _) =
            run(json!({"format": {"format_type": "parquet"}, "use_raw_stream_name": true}))
                .unwrap();
        assert_eq!(
            ours["object_key_template"],
            "{object_key_path}/{stream}/{run_id}-{part}.{ext}"
        );
        assert!(!ours.contains_key("date_partition_format"));
    }

    #[test]
    fn one_setting_in_both_spellings_must_agree() {
        let err =
            run(json!({"bucket": "ours", "cloud_provider": {"aws": {"aws_bucket": "theirs"}}}))
                .unwrap_err()
                .to_string();
        assert!(err.contains("\"bucket\""), "{err}");
        assert!(err.contains("\"cloud_provider.aws.aws_bucket\""), "{err}");
        assert!(
            err.contains("\"ours\"") && err.contains("\"theirs\""),
            "{err}"
        );
        let (ours, _) =
            run(json!({"bucket": "same", "cloud_provider": {"aws": {"aws_bucket": "same"}}}))
                .unwrap();
        assert_eq!(ours["bucket"], "same");
        let err = run(json!({"file_type": "csv", "format": {"format_type": "parquet"}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"file_type\"") && err.contains("\"format.format_type\""),
            "{err}"
        );
        // A default of ours (Meltano passes them all) is not a second value.
        let (ours, _) = translate(
            json!({"max_batch_age_seconds": 300, "max_batch_age": 1})
                .as_object()
                .unwrap(),
            |key, _| key == "max_batch_age_seconds",
        )
        .unwrap();
        assert_eq!(ours["max_batch_age_seconds"], 60);
        // Their gzip is implied: our own compression wins.
        let (ours, _) =
            run(json!({"compression": "zstd", "format": {"format_type": "jsonl"}})).unwrap();
        assert_eq!(ours["compression"], "zstd");
    }

    #[test]
    fn other_clouds_and_formats_are_refused() {
        let err = run(json!({"cloud_provider": {"cloud_provider_type": "gcp"}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"cloud_provider.cloud_provider_type\" has value \"gcp\""),
            "{err}"
        );
        assert!(err.contains("allowed \"aws\""), "{err}");
        let err = run(json!({"format": {"format_type": "avro"}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"format.format_type\" has value \"avro\""),
            "{err}"
        );
    }

    #[test]
    fn keys_without_meaning_are_named() {
        let (_, warnings) = run(json!({
            "format": {"format_type": "parquet", "format_parquet": {"validate": true, "get_schema_from_tap": true}},
            "cloud_provider": {"aws": {"aws_bucket": "b", "aws_kms": "x"}, "gcp": {}},
            "flatten_records": true
        }))
        .unwrap();
        let all = warnings.join("\n");
        for key in [
            "format.format_parquet.validate",
            "format.format_parquet.get_schema_from_tap",
            "cloud_provider.aws.aws_kms",
            "cloud_provider.gcp",
            "flatten_records",
        ] {
            assert!(all.contains(&format!("{key:?}")), "{key}: {all}");
        }
    }

    /// Through `Config`: the values produced pass its checks, and its aliases take
    /// their plain renames.
    #[test]
    fn a_config_of_theirs_validates_as_ours() {
        use crate::config::Config;
        use crate::encode::FileType;
        let theirs = json!({
            "format": {"format_type": "parquet"},
            "cloud_provider": {"cloud_provider_type": "aws", "aws": {"aws_bucket": "b", "aws_region": "us-west-2"}},
            "prefix": "out", "stream_name_path_override": "Everything",
            "append_date_to_prefix_grain": "microsecond", "partition_name_enabled": true,
            "append_date_to_filename_grain": "microsecond", "max_batch_size": 10,
            "flattening_enabled": true, "flattening_max_depth": 1,
            // What Meltano passes for our own settings' defaults is not a rival.
            "max_batch_rows": 1000000, "object_key_template": crate::object_key::DEFAULT_TEMPLATE
        });
        let (config, warnings) = Config::from_map(theirs.as_object().unwrap()).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(config.bucket, "b");
        assert_eq!(config.file_type, FileType::Parquet);
        assert_eq!(config.object_key_path, "out");
        assert_eq!(config.table.as_deref(), Some("Everything"));
        assert_eq!(config.limits.max_batch_rows, 10);
        assert_eq!(config.types.flatten_max_depth, 1);
        assert_eq!(
            config.date_partition_format.as_deref(),
            Some("year=%Y/month=%m/day=%d/hour=%H/minute=%M/second=%S/microsecond=%6f")
        );
        let both = json!({"format": {"format_type": "parquet"}, "prefix": "a", "object_key_path": "b",
            "cloud_provider": {"aws": {"aws_bucket": "b"}}});
        let err = Config::from_map(both.as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"object_key_path\"") && err.contains("\"prefix\""),
            "{err}"
        );
    }

    #[test]
    fn flattening_and_batch_age() {
        let (ours, _) =
            run(json!({"flattening_enabled": true, "flattening_max_depth": 2})).unwrap();
        assert_eq!(ours["flatten_max_depth"], 2);
        let err = run(json!({"flattening_enabled": true}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"flattening_max_depth\": 1"), "{err}");
        assert_eq!(age_seconds(&json!(0.5)).unwrap(), 30);
        assert_eq!(age_seconds(&json!("2")).unwrap(), 120);
        assert!(age_seconds(&json!(0)).is_err());
        let (ours, _) = run(json!({"region": "x"})).unwrap();
        assert_eq!(ours, *json!({"region": "x"}).as_object().unwrap());
    }
}
