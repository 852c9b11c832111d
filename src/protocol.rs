//! Singer messages: one JSON object per input line, parsed without copying the record.
//!
//! Owns: the message envelope and the errors a line can cause by its shape alone.
//! Must not touch: schemas, buffers or state; the record stays raw JSON text here and
//! is decoded by `batch`, against the stream's columns.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One Singer message, borrowing from the input line.
#[derive(Debug)]
pub enum Message<'a> {
    Schema {
        stream: Cow<'a, str>,
        schema: &'a RawValue,
        key_properties: Vec<String>,
    },
    Record {
        stream: Cow<'a, str>,
        record: &'a RawValue,
    },
    State {
        value: &'a RawValue,
    },
    ActivateVersion {
        stream: Cow<'a, str>,
        version: i64,
    },
    /// A message type this target does not act on (BATCH, future types).
    Other {
        kind: Cow<'a, str>,
    },
}

/// Why a line is not a usable message. `stream` is set when the line named one.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub stream: Option<String>,
    pub message: String,
}

/// The envelope, flat: serde's tagged enums cannot hold a borrowed `RawValue`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    record: Option<&'a RawValue>,
    #[serde(borrow)]
    schema: Option<&'a RawValue>,
    key_properties: Option<Vec<String>>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    version: Option<i64>,
}

/// Parses one non-blank line.
pub fn parse_line(line: &str) -> Result<Message<'_>, ParseError> {
    let envelope: Envelope = serde_json::from_str(line).map_err(|e| ParseError {
        stream: None,
        message: format!("not a JSON object: {}", describe_json_error(&e)),
    })?;
    let stream = envelope.stream;
    let fail = |stream: &Option<Cow<str>>, message: &str| ParseError {
        stream: stream.as_deref().map(str::to_owned),
        message: message.to_owned(),
    };
    let Some(kind) = envelope.kind else {
        return Err(fail(&stream, "message has no \"type\""));
    };
    match kind.as_ref() {
        "RECORD" => {
            let record = envelope
                .record
                .filter(|r| r.get().starts_with('{'))
                .ok_or_else(|| fail(&stream, "RECORD needs a \"record\" object"))?;
            let stream = stream.ok_or_else(|| fail(&None, "RECORD has no \"stream\""))?;
            Ok(Message::Record { stream, record })
        }
        "SCHEMA" => {
            let schema = envelope
                .schema
                .filter(|s| s.get().starts_with('{'))
                .ok_or_else(|| fail(&stream, "SCHEMA needs a \"schema\" object"))?;
            let stream = stream.ok_or_else(|| fail(&None, "SCHEMA has no \"stream\""))?;
            Ok(Message::Schema {
                stream,
                schema,
                key_properties: envelope.key_properties.unwrap_or_default(),
            })
        }
        "STATE" => {
            let value = envelope
                .value
                .ok_or_else(|| fail(&stream, "STATE needs a \"value\""))?;
            Ok(Message::State { value })
        }
        "ACTIVATE_VERSION" => {
            let stream = stream.ok_or_else(|| fail(&None, "ACTIVATE_VERSION has no \"stream\""))?;
            let version = envelope.version.ok_or_else(|| {
                fail(
                    &Some(stream.clone()),
                    "ACTIVATE_VERSION needs an integer \"version\"",
                )
            })?;
            Ok(Message::ActivateVersion { stream, version })
        }
        _ => Ok(Message::Other { kind }),
    }
}

/// serde_json's message without its "at line 1 column N" tail, which would mislead:
/// the line number that matters is the input's, given by the caller.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("{} (at column {})", &text[..i], e.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type() {
        let m =
            parse_line(r#"{"type":"RECORD","stream":"s","record":{"a":1},"time_extracted":"x"}"#);
        assert!(
            matches!(m, Ok(Message::Record { ref stream, record }) if stream == "s" && record.get() == r#"{"a":1}"#)
        );
        let m = parse_line(
            r#"{"type":"SCHEMA","stream":"s","schema":{"properties":{}},"key_properties":["id"]}"#,
        );
        assert!(
            matches!(m, Ok(Message::Schema { ref key_properties, .. }) if key_properties == &["id"])
        );
        let m = parse_line(r#"{"type":"STATE","value":{"bookmarks":{}}}"#);
        assert!(matches!(m, Ok(Message::State { value }) if value.get() == r#"{"bookmarks":{}}"#));
        let m = parse_line(r#"{"type":"ACTIVATE_VERSION","stream":"s","version":7}"#);
        assert!(matches!(m, Ok(Message::ActivateVersion { version: 7, .. })));
        let m = parse_line(r#"{"type":"BATCH","stream":"s"}"#);
        assert!(matches!(m, Ok(Message::Other { ref kind }) if kind == "BATCH"));
    }

    #[test]
    fn escaped_stream_names_are_decoded() {
        let m = parse_line(r#"{"type":"RECORD","stream":"a\"b","record":{}}"#).unwrap();
        assert!(matches!(m, Message::Record { ref stream, .. } if stream == "a\"b"));
    }

    #[test]
    fn bad_lines_say_why() {
        let e = parse_line("{not json").unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{}", e.message);
        assert!(!e.message.contains("line 1"), "{}", e.message);
        let e = parse_line(r#"[1,2]"#).unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{}", e.message);
        let e = parse_line(r#"{"stream":"s"}"#).unwrap_err();
        assert_eq!(e.stream.as_deref(), Some("s"));
        assert!(e.message.contains("no \"type\""));
        let e = parse_line(r#"{"type":"RECORD","stream":"s","record":[1]}"#).unwrap_err();
        assert!(e.message.contains("\"record\" object"));
        let e = parse_line(r#"{"type":"RECORD","record":{}}"#).unwrap_err();
        assert!(e.message.contains("no \"stream\""));
    }
}
