//! Singer messages: one JSON object per input line, parsed in one pass.
//!
//! Owns: the message envelope and the errors a line can cause by its shape alone.
//! Must not touch: schemas, buffers or state. When the caller can take a record as it
//! is parsed (`RecordSink`), the record's value is handed to it straight from the
//! parser, so record bytes are scanned once; otherwise it stays raw JSON text.
//!
//! A line serde_json refuses gets a second look (`dialect`): a record holding `NaN`,
//! `Infinity` or lone surrogate escapes is read from a rewritten copy of the line, and
//! any other refusal names its real cause (a byte order mark, a non-finite number or a
//! surrogate outside the record, an envelope field of the wrong type).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::dialect::{self, Marks};
use crate::scan::Scanner;
use crate::values::describe_raw;

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
        record: Record<'a>,
        /// `time_extracted` as its raw JSON text, and `version`, when the message has them.
        time_extracted: Option<&'a str>,
        version: Option<i64>,
    },
    State {
        value: &'a RawValue,
    },
    ActivateVersion {
        stream: Cow<'a, str>,
        version: i64,
    },
    /// Records in files (the Singer SDK's batch mode): `encoding` as raw JSON, and the
    /// files' URLs in order.
    Batch {
        stream: Cow<'a, str>,
        encoding: &'a RawValue,
        manifest: Vec<String>,
    },
    /// A message type this target does not know.
    Other {
        kind: Cow<'a, str>,
    },
}

/// A RECORD's value: taken by the sink while parsing, refused by it, or left raw.
#[derive(Debug)]
pub enum Record<'a> {
    Decoded,
    /// The sink refused a value; it holds the reason. The rest of the line was not read.
    /// (A line that is not JSON is an error instead, even inside a record.)
    Refused,
    Raw(&'a RawValue),
    /// The record cannot be a row, for the reason given: it is not an object, or holds
    /// lone surrogates. Like a refused record, it goes to `invalid_records`.
    Invalid(String),
}

/// Takes record values as they are parsed.
pub trait RecordSink {
    /// Whether records of `stream` are decoded in place.
    fn accepts(&mut self, stream: &str) -> bool;
    /// Decodes one record value of `stream`. An error refuses the record; the sink keeps
    /// the reason.
    fn decode<'de, D: Deserializer<'de>>(&mut self, stream: &str, d: D) -> Result<(), D::Error>;
    /// Decodes one plain record value of `stream` at the scanner's position, or leaves
    /// no trace and answers false (see `Batch::decode_plain`).
    fn decode_plain(&mut self, _stream: &str, _scanner: &mut Scanner) -> bool {
        false
    }
    /// Drops the record value just decoded by `decode_plain`, or what a failed
    /// decode left of it.
    fn discard(&mut self, _stream: &str) {}
    /// `decode` for a record of a rewritten line (see `dialect`), whose values at the
    /// places `marks` gives are NaN or infinities.
    fn decode_marked<'de, D: Deserializer<'de>>(
        &mut self,
        stream: &str,
        d: D,
        _marks: &Marks,
    ) -> Result<(), D::Error> {
        self.decode(stream, d)
    }
    /// Whether lone surrogates in records of `stream` become U+FFFD (else the record
    /// is invalid).
    fn replaces_surrogates(&mut self, _stream: &str) -> bool {
        false
    }
}

/// A sink that takes nothing: every record stays raw.
pub struct NoSink;

impl RecordSink for NoSink {
    fn accepts(&mut self, _: &str) -> bool {
        false
    }

    fn decode<'de, D: Deserializer<'de>>(&mut self, _: &str, d: D) -> Result<(), D::Error> {
        IgnoredAny::deserialize(d).map(|_| ())
    }
}

/// Why a line is not a usable message. `stream` is set when the line named one.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub stream: Option<String>,
    pub message: String,
}

/// Parses one non-blank line, handing a RECORD's value to `sink` when it accepts the
/// stream and the line names the stream before the record (as taps do).
pub fn parse_line<'a, S: RecordSink>(
    line: &'a str,
    sink: &mut S,
) -> Result<Message<'a>, ParseError> {
    if let Some(message) = plain_record(line, sink) {
        return Ok(message);
    }
    let mut fields = Fields::default();
    match read_envelope(line, &mut fields, sink, None) {
        Ok(()) => fields.into_message(),
        Err(e) if fields.refused && e.classify() == serde_json::error::Category::Data => {
            Ok(refused(fields))
        }
        Err(e) => {
            if let Some(stream) = fields.stream.as_deref() {
                sink.discard(stream);
            }
            if fields.bad.is_none()
                && let Some(message) = read_dialect(line, sink)
            {
                return Ok(message);
            }
            Err(ParseError {
                message: describe_failure(line, &fields, &e),
                stream: fields.stream.map(Cow::into_owned),
            })
        }
    }
}

fn read_envelope<'a, S: RecordSink>(
    text: &'a str,
    fields: &mut Fields<'a>,
    sink: &mut S,
    marks: Option<&Marks>,
) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    EnvelopeSeed {
        fields,
        sink,
        marks,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end())
}

/// The record the sink refused while it was being read.
fn refused(fields: Fields) -> Message {
    Message::Record {
        stream: fields.stream.unwrap_or_default(),
        record: Record::Refused,
        time_extracted: None,
        version: None,
    }
}

/// A RECORD line that holds NaN, infinities or lone surrogates in its record (and
/// nowhere else), read from its rewritten copy; None for any other line.
fn read_dialect<'a, S: RecordSink>(line: &'a str, sink: &mut S) -> Option<Message<'a>> {
    let found = dialect::rewrite(line)?;
    if !found.spots.iter().all(dialect::Spot::in_record) {
        return None;
    }
    let stream = found.stream.clone()?;
    let lone = found
        .spots
        .iter()
        .find(|s| matches!(s.found, dialect::Found::Surrogate { .. }));
    let invalid = lone.filter(|_| !sink.replaces_surrogates(&stream));
    let (text, marks) = (found.text.as_str(), found.marks());
    let mut fields = Fields::default();
    let read = match invalid {
        Some(_) => read_envelope(text, &mut fields, &mut NoSink, None),
        None => read_envelope(text, &mut fields, sink, Some(&marks)),
    };
    let message = match read {
        Ok(()) => fields.into_message().ok()?,
        Err(e) if fields.refused && e.classify() == serde_json::error::Category::Data => {
            refused(fields)
        }
        Err(_) => return None,
    };
    let Message::Record {
        record,
        time_extracted,
        version,
        ..
    } = message
    else {
        return None;
    };
    let record = match (record, invalid) {
        (_, Some(spot)) => Record::Invalid(spot.describe()),
        (Record::Raw(raw), None) if sink.accepts(&stream) => {
            let mut d = serde_json::Deserializer::from_str(raw.get());
            match sink.decode_marked(&stream, &mut d, &marks) {
                Ok(()) => Record::Decoded,
                Err(_) => Record::Refused,
            }
        }
        (Record::Raw(_), None) => Record::Invalid("the stream has no SCHEMA".into()),
        (Record::Decoded, None) => Record::Decoded,
        (Record::Refused, None) => Record::Refused,
        (Record::Invalid(reason), None) => Record::Invalid(reason),
    };
    // The rewrite kept every offset, so the text is at the same place in the line.
    let time_extracted = time_extracted.and_then(|t| {
        let at = (t.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
        line.get(at..at + t.len())
    });
    Some(Message::Record {
        stream: Cow::Owned(stream),
        record,
        time_extracted,
        version,
    })
}

/// Why a line could not be read, by its real cause where one is known.
fn describe_failure(line: &str, fields: &Fields, e: &serde_json::Error) -> String {
    if line.starts_with('\u{feff}') {
        return "the line starts with a byte order mark (U+FEFF), which only the start of the input may have".into();
    }
    if let Some(bad) = &fields.bad {
        return bad.clone();
    }
    if let Some(found) = dialect::rewrite(line) {
        let spot = found.spots.iter().find(|s| !s.in_record());
        if let Some(spot) = spot.or(found.spots.first()) {
            return spot.describe();
        }
    }
    format!("not a JSON object: {}", describe_json_error(e))
}

/// The fast path for the line taps write most: `{"type":"RECORD","stream":...,
/// "record":{...}` in that order, plain JSON throughout (see `scan`), the record taken by
/// the sink. Any other line, or any doubt, gives None and nothing decoded: the full
/// parser then reads the line and gives the same result or the error.
pub fn plain_record<'a, S: RecordSink>(line: &'a str, sink: &mut S) -> Option<Message<'a>> {
    let mut scanner = Scanner::new(line);
    let key =
        |scanner: &mut Scanner<'a>, quoted: &[u8]| scanner.eat_literal(quoted) && scanner.eat(b':');
    let head = scanner.eat(b'{')
        && key(&mut scanner, br#""type""#)
        && scanner.eat_literal(br#""RECORD""#)
        && scanner.eat(b',')
        && key(&mut scanner, br#""stream""#);
    let stream = head.then(|| scanner.plain_str()).flatten()?;
    if !(scanner.eat(b',') && key(&mut scanner, br#""record""#) && sink.accepts(stream)) {
        return None;
    }
    if !sink.decode_plain(stream, &mut scanner) {
        return None;
    }
    // The rest: time_extracted, version, and fields the target does not read.
    let (mut time_extracted, mut version) = (None, None);
    let rest = loop {
        if scanner.eat(b'}') {
            break scanner.at_end();
        }
        let read = scanner.eat(b',')
            && match scanner.plain_str() {
                Some("time_extracted") => {
                    scanner.eat(b':') && {
                        time_extracted = scanner.value_text();
                        time_extracted.is_some()
                    }
                }
                Some("version") => {
                    scanner.eat(b':') && {
                        version = scanner.number().and_then(|n| n.parse::<i64>().ok());
                        version.is_some()
                    }
                }
                Some("type" | "stream" | "record" | "schema" | "key_properties" | "value")
                | None => false,
                Some(_) => scanner.eat(b':') && scanner.skip_value(),
            };
        if !read {
            break false;
        }
    };
    if !rest {
        sink.discard(stream);
        return None;
    }
    Some(Message::Record {
        stream: Cow::Borrowed(stream),
        record: Record::Decoded,
        time_extracted,
        version,
    })
}

/// The envelope's fields, as far as they were read.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<Cow<'a, str>>,
    stream: Option<Cow<'a, str>>,
    record: Option<&'a RawValue>,
    decoded: bool,
    refused: bool,
    schema: Option<&'a RawValue>,
    key_properties: Option<Vec<String>>,
    value: Option<&'a RawValue>,
    version: Option<i64>,
    time_extracted: Option<&'a str>,
    encoding: Option<&'a RawValue>,
    manifest: Option<&'a RawValue>,
    /// An envelope field of the wrong type, as the message that says so.
    bad: Option<String>,
}

impl<'a> Fields<'a> {
    fn into_message(self) -> Result<Message<'a>, ParseError> {
        let stream = self.stream;
        let fail = |stream: &Option<Cow<str>>, message: &str| ParseError {
            stream: stream.as_deref().map(str::to_owned),
            message: message.to_owned(),
        };
        let Some(kind) = self.kind else {
            return Err(fail(&stream, "message has no \"type\""));
        };
        match kind.as_ref() {
            "RECORD" => {
                let record = match self.record {
                    _ if self.decoded => Record::Decoded,
                    Some(raw) if raw.get().starts_with('{') => Record::Raw(raw),
                    Some(raw) => Record::Invalid(not_an_object(raw.get())),
                    None => return Err(fail(&stream, "RECORD has no \"record\"")),
                };
                let stream = stream.ok_or_else(|| fail(&None, "RECORD has no \"stream\""))?;
                Ok(Message::Record {
                    stream,
                    record,
                    time_extracted: self.time_extracted,
                    version: self.version,
                })
            }
            "SCHEMA" => {
                let schema = match self.schema {
                    Some(raw) if raw.get().starts_with('{') => raw,
                    Some(raw) => {
                        let got = describe_raw(raw.get());
                        let message = format!("\"schema\" must be an object, got {got}");
                        return Err(fail(&stream, &message));
                    }
                    None => return Err(fail(&stream, "SCHEMA needs a \"schema\" object")),
                };
                let stream = stream.ok_or_else(|| fail(&None, "SCHEMA has no \"stream\""))?;
                Ok(Message::Schema {
                    stream,
                    schema,
                    key_properties: self.key_properties.unwrap_or_default(),
                })
            }
            "STATE" => {
                let value = self
                    .value
                    .ok_or_else(|| fail(&stream, "STATE needs a \"value\""))?;
                Ok(Message::State { value })
            }
            "ACTIVATE_VERSION" => {
                let stream =
                    stream.ok_or_else(|| fail(&None, "ACTIVATE_VERSION has no \"stream\""))?;
                let version = self.version.ok_or_else(|| {
                    fail(
                        &Some(stream.clone()),
                        "ACTIVATE_VERSION needs an integer \"version\"",
                    )
                })?;
                Ok(Message::ActivateVersion { stream, version })
            }
            "BATCH" => {
                let stream = stream.ok_or_else(|| fail(&None, "BATCH has no \"stream\""))?;
                let known = Some(stream.clone());
                let encoding = self
                    .encoding
                    .ok_or_else(|| fail(&known, "BATCH needs an \"encoding\" object"))?;
                let manifest = self
                    .manifest
                    .and_then(|m| serde_json::from_str::<Vec<String>>(m.get()).ok())
                    .ok_or_else(|| fail(&known, "BATCH needs a \"manifest\" list of file URLs"))?;
                Ok(Message::Batch {
                    stream,
                    encoding,
                    manifest,
                })
            }
            _ => Ok(Message::Other { kind }),
        }
    }
}

/// Why a record value that is not an object cannot be a row.
pub fn not_an_object(raw: &str) -> String {
    format!("the record is {}; expected an object", describe_raw(raw))
}

struct EnvelopeSeed<'f, 'a, S> {
    fields: &'f mut Fields<'a>,
    sink: &'f mut S,
    marks: Option<&'f Marks>,
}

impl<'de, S: RecordSink> DeserializeSeed<'de> for EnvelopeSeed<'_, 'de, S> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// The envelope field `key`, of the type `expected`, read by `read` from its raw JSON;
/// a value of another type is noted in `bad` and stops the parse.
fn envelope_field<'de, T, E: de::Error>(
    bad: &mut Option<String>,
    key: &str,
    raw: &'de RawValue,
    expected: &str,
    read: impl FnOnce(&'de str) -> Option<T>,
) -> Result<T, E> {
    read(raw.get()).ok_or_else(|| {
        let message = format!(
            "{key:?} must be {expected}, got {}",
            describe_raw(raw.get())
        );
        // A value of the right type with lone surrogates in it: `dialect` says so.
        if dialect::rewrite(raw.get()).is_none() {
            bad.get_or_insert(message.clone());
        }
        E::custom(message)
    })
}

/// A JSON string's text, borrowed when it has no escapes.
fn string_of(raw: &str) -> Option<Cow<'_, str>> {
    serde_json::from_str::<BorrowedStr>(raw).ok().map(|s| s.0)
}

/// A whole number (`12`, `12.0`, `1.2e1`), or null for none.
fn version_of(raw: &str) -> Option<Option<i64>> {
    if raw == "null" {
        return Some(None);
    }
    match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => crate::values::parse_integer(raw).ok().map(Some),
        _ => None,
    }
}

impl<'de, S: RecordSink> Visitor<'de> for EnvelopeSeed<'_, 'de, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Singer message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let f = self.fields;
        while let Some(BorrowedStr(key)) = map.next_key::<BorrowedStr<'de>>()? {
            match key.as_ref() {
                "type" => {
                    let raw = map.next_value()?;
                    f.kind = Some(envelope_field(
                        &mut f.bad, "type", raw, "a string", string_of,
                    )?);
                }
                "stream" => {
                    let raw = map.next_value()?;
                    let stream = envelope_field(&mut f.bad, "stream", raw, "a string", string_of)?;
                    f.stream = Some(stream);
                }
                "record" => {
                    let in_place = f.kind.as_deref() == Some("RECORD")
                        && f.stream.as_deref().is_some_and(|s| self.sink.accepts(s));
                    if in_place {
                        let stream = f.stream.as_deref().unwrap_or_default();
                        let seed = SinkSeed {
                            sink: &mut *self.sink,
                            stream,
                            marks: self.marks,
                        };
                        if let Err(e) = map.next_value_seed(seed) {
                            f.refused = true;
                            return Err(e);
                        }
                        f.decoded = true;
                    } else {
                        f.record = Some(map.next_value()?);
                    }
                }
                "schema" => f.schema = Some(map.next_value()?),
                "key_properties" => {
                    let raw = map.next_value()?;
                    let expected = "an array of strings (or null)";
                    let keys = envelope_field(&mut f.bad, "key_properties", raw, expected, |t| {
                        serde_json::from_str::<Option<Vec<String>>>(t).ok()
                    })?;
                    f.key_properties = keys;
                }
                "value" => f.value = Some(map.next_value()?),
                "encoding" => f.encoding = Some(map.next_value()?),
                "manifest" => f.manifest = Some(map.next_value()?),
                "version" => {
                    let raw = map.next_value()?;
                    let expected = "a whole number (or null)";
                    f.version = envelope_field(&mut f.bad, "version", raw, expected, version_of)?;
                }
                "time_extracted" => {
                    f.time_extracted = Some(map.next_value::<&RawValue>()?.get());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A string (a field name or value), borrowed from the input unless it holds escapes.
pub struct BorrowedStr<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for BorrowedStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BorrowedStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

struct SinkSeed<'s, S> {
    sink: &'s mut S,
    stream: &'s str,
    marks: Option<&'s Marks>,
}

impl<'de, S: RecordSink> DeserializeSeed<'de> for SinkSeed<'_, S> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.marks {
            Some(marks) => self.sink.decode_marked(self.stream, d, marks),
            None => self.sink.decode(self.stream, d),
        }
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

    fn parse(line: &str) -> Result<Message<'_>, ParseError> {
        parse_line(line, &mut NoSink)
    }

    #[test]
    fn parses_each_type() {
        let m = parse(r#"{"type":"RECORD","stream":"s","record":{"a":1},"time_extracted":"x"}"#);
        assert!(
            matches!(m, Ok(Message::Record { ref stream, record: Record::Raw(r), .. }) if stream == "s" && r.get() == r#"{"a":1}"#)
        );
        let m = parse(
            r#"{"type":"SCHEMA","stream":"s","schema":{"properties":{}},"key_properties":["id"]}"#,
        );
        assert!(
            matches!(m, Ok(Message::Schema { ref key_properties, .. }) if key_properties == &["id"])
        );
        let m = parse(r#"{"type":"STATE","value":{"bookmarks":{}}}"#);
        assert!(matches!(m, Ok(Message::State { value }) if value.get() == r#"{"bookmarks":{}}"#));
        let m = parse(r#"{"type":"ACTIVATE_VERSION","stream":"s","version":7}"#);
        assert!(matches!(m, Ok(Message::ActivateVersion { version: 7, .. })));
        let m = parse(
            r#"{"type":"BATCH","stream":"s","encoding":{"format":"jsonl"},"manifest":["file:///a","file:///b"]}"#,
        );
        assert!(
            matches!(m, Ok(Message::Batch { ref stream, encoding, ref manifest }) if stream == "s" && encoding.get() == r#"{"format":"jsonl"}"# && manifest == &["file:///a", "file:///b"])
        );
        let m = parse(r#"{"type":"FOO","stream":"s"}"#);
        assert!(matches!(m, Ok(Message::Other { ref kind }) if kind == "FOO"));
        let e = parse(r#"{"type":"BATCH","stream":"s","encoding":{}}"#).unwrap_err();
        assert!(e.message.contains("\"manifest\" list"), "{}", e.message);
        let e = parse(r#"{"type":"BATCH","stream":"s","encoding":{},"manifest":[1]}"#).unwrap_err();
        assert!(e.message.contains("\"manifest\" list"), "{}", e.message);
        let e = parse(r#"{"type":"BATCH","stream":"s","manifest":[]}"#).unwrap_err();
        assert!(e.message.contains("\"encoding\" object"), "{}", e.message);
    }

    /// Counts the records it takes, and refuses records holding "bad".
    struct Counting(usize);

    impl RecordSink for Counting {
        fn accepts(&mut self, stream: &str) -> bool {
            stream == "s"
        }

        fn decode<'de, D: Deserializer<'de>>(&mut self, _: &str, d: D) -> Result<(), D::Error> {
            let value = serde_json::Value::deserialize(d)?;
            if value.get("bad").is_some() {
                return Err(de::Error::custom("refused"));
            }
            self.0 += 1;
            Ok(())
        }
    }

    #[test]
    fn records_are_decoded_in_place_when_the_stream_comes_first() {
        let mut sink = Counting(0);
        let m = parse_line(
            r#"{"type":"RECORD","stream":"s","record":{"a":1}}"#,
            &mut sink,
        );
        assert!(matches!(
            m,
            Ok(Message::Record {
                record: Record::Decoded,
                ..
            })
        ));
        for stays_raw in [
            r#"{"record":{"a":1},"type":"RECORD","stream":"s"}"#,
            r#"{"type":"RECORD","stream":"t","record":{"a":1}}"#,
        ] {
            let m = parse_line(stays_raw, &mut sink);
            assert!(
                matches!(
                    m,
                    Ok(Message::Record {
                        record: Record::Raw(_),
                        ..
                    })
                ),
                "{stays_raw}"
            );
        }
        assert_eq!(sink.0, 1);
        let m = parse_line(
            r#"{"type":"RECORD","stream":"s","record":{"bad":1}}"#,
            &mut sink,
        );
        assert!(
            matches!(m, Ok(Message::Record { record: Record::Refused, ref stream, .. }) if stream == "s")
        );
        let e = parse_line(
            r#"{"type":"RECORD","stream":"s","record":{"a":1}} x"#,
            &mut sink,
        )
        .unwrap_err();
        assert!(e.message.contains("trailing characters"), "{}", e.message);
        let e = parse_line(
            r#"{"type":"RECORD","stream":"s","record":{"a":NaN} x"#,
            &mut sink,
        )
        .unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{}", e.message);
        assert_eq!(e.stream.as_deref(), Some("s"));
    }

    #[test]
    fn records_with_nan_are_read_from_a_rewritten_line() {
        let mut sink = Counting(0);
        let line = r#"{"type":"RECORD","stream":"s","record":{"a":NaN,"b":[-Infinity]},"time_extracted":"2024-01-01T00:00:00Z"}"#;
        let m = parse_line(line, &mut sink).unwrap();
        let Message::Record {
            record: Record::Decoded,
            time_extracted: Some(time),
            ..
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(time, r#""2024-01-01T00:00:00Z""#);
        assert_eq!(sink.0, 1);
        // The record before the stream's name: decoded from the rewritten line too.
        let m = parse_line(
            r#"{"record":{"a":Infinity},"type":"RECORD","stream":"s"}"#,
            &mut sink,
        );
        assert!(matches!(
            m,
            Ok(Message::Record {
                record: Record::Decoded,
                ..
            })
        ));
        assert_eq!(sink.0, 2);
        // Outside the record, NaN stays an error that names it.
        let e = parse(r#"{"type":"STATE","value":{"x":NaN}}"#).unwrap_err();
        assert!(
            e.message.contains(r#"field "value.x": NaN is not JSON"#),
            "{}",
            e.message
        );
    }

    #[test]
    fn lone_surrogates_make_the_record_invalid_naming_the_field() {
        let mut sink = Counting(0);
        let line = r#"{"type":"RECORD","stream":"s","record":{"a":{"b":"x\udc00"}}}"#;
        let Ok(Message::Record {
            record: Record::Invalid(reason),
            ref stream,
            ..
        }) = parse_line(line, &mut sink)
        else {
            panic!()
        };
        assert_eq!(stream, "s");
        assert!(
            reason.contains(r#"field "a.b" holds \udc00, a lone trailing surrogate"#),
            "{reason}"
        );
        assert_eq!(sink.0, 0);
        let e = parse(r#"{"type":"RECORD","stream":"s\ud800","record":{}}"#).unwrap_err();
        assert!(
            e.message
                .contains(r#"field "stream" holds \ud800, a lone leading"#),
            "{}",
            e.message
        );
    }

    #[test]
    fn envelope_fields_of_the_wrong_type_are_named() {
        for (line, expected) in [
            (
                r#"{"type":"RECORD","stream":5,"record":{}}"#,
                r#""stream" must be a string, got the number 5"#,
            ),
            (
                r#"{"type":null,"stream":"s"}"#,
                r#""type" must be a string, got null"#,
            ),
            (
                r#"{"type":"RECORD","stream":"s","record":{},"version":1.5}"#,
                r#""version" must be a whole number (or null), got the number 1.5"#,
            ),
            (
                r#"{"type":"SCHEMA","stream":"s","schema":{},"key_properties":"id"}"#,
                r#""key_properties" must be an array of strings (or null), got the string "id""#,
            ),
            (
                r#"{"type":"SCHEMA","stream":"s","schema":true}"#,
                r#""schema" must be an object, got true"#,
            ),
            (
                "\u{feff}{\"type\":\"STATE\",\"value\":{}}",
                "byte order mark (U+FEFF)",
            ),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.message.contains(expected), "{line}: {}", e.message);
        }
        let m = parse(r#"{"type":"ACTIVATE_VERSION","stream":"s","version":1.7e12}"#);
        assert!(matches!(
            m,
            Ok(Message::ActivateVersion {
                version: 1_700_000_000_000,
                ..
            })
        ));
    }

    #[test]
    fn records_carry_time_extracted_and_version_wherever_they_stand() {
        let mut sink = Counting(0);
        for line in [
            r#"{"type":"RECORD","stream":"s","record":{"a":1},"version":3,"time_extracted":"2024-01-01T00:00:00Z"}"#,
            r#"{"time_extracted":"2024-01-01T00:00:00Z","version":3,"type":"RECORD","stream":"s","record":{"a":1}}"#,
        ] {
            let Ok(Message::Record {
                time_extracted: Some(time),
                version: Some(3),
                ..
            }) = parse_line(line, &mut sink)
            else {
                panic!("{line}")
            };
            assert_eq!(time, r#""2024-01-01T00:00:00Z""#);
        }
        let m = parse(r#"{"type":"RECORD","stream":"s","record":{},"time_extracted":null}"#);
        assert!(matches!(
            m,
            Ok(Message::Record {
                time_extracted: Some("null"),
                version: None,
                ..
            })
        ));
        let m = parse(r#"{"type":"RECORD","stream":"s","record":{}}"#);
        assert!(matches!(
            m,
            Ok(Message::Record {
                time_extracted: None,
                ..
            })
        ));
    }

    #[test]
    fn escaped_stream_names_are_decoded() {
        let m = parse(r#"{"type":"RECORD","stream":"a\"b","record":{}}"#).unwrap();
        assert!(matches!(m, Message::Record { ref stream, .. } if stream == "a\"b"));
    }

    #[test]
    fn bad_lines_say_why() {
        let e = parse("{not json").unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{}", e.message);
        assert!(!e.message.contains("line 1"), "{}", e.message);
        let e = parse(r#"[1,2]"#).unwrap_err();
        assert!(e.message.starts_with("not a JSON object"), "{}", e.message);
        let e = parse(r#"{"stream":"s"}"#).unwrap_err();
        assert_eq!(e.stream.as_deref(), Some("s"));
        assert!(e.message.contains("no \"type\""));
        for (record, what) in [
            ("[1]", "an array"),
            ("null", "null"),
            ("\"x\"", "the string \"x\""),
        ] {
            let line = format!(r#"{{"type":"RECORD","stream":"s","record":{record}}}"#);
            let Ok(Message::Record {
                record: Record::Invalid(reason),
                ..
            }) = parse(&line)
            else {
                panic!("{line}")
            };
            assert_eq!(reason, format!("the record is {what}; expected an object"));
        }
        let e = parse(r#"{"type":"RECORD","record":{}}"#).unwrap_err();
        assert!(e.message.contains("no \"stream\""));
    }
}
