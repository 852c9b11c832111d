//! JSON as some taps write it and JSON forbids: the tokens `NaN`, `Infinity` and
//! `-Infinity` (Python's `json.dumps` writes them by default, and the Singer SDK's
//! targets read them), and escapes of lone UTF-16 surrogates (`"\ud800"`, from strings
//! that JavaScript or Java cut between the two halves of a character).
//!
//! Owns: finding them in a line, with the field each is in, and rewriting them in
//! place to JSON of the same length that serde_json accepts (`0.0`, `0.000000`,
//! `-0.000000`; `\ufffd`), so every other byte of the line keeps its offset. `Marks`
//! then tells the decoder which values were such tokens, by where they are.
//! Must not touch: what the values mean (`batch` decides: float columns take NaN and
//! the infinities, nothing else does). Only lines the full parser refused come here,
//! so plain lines pay nothing for it.

/// What was found at a spot.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// `NaN`, `Infinity` or `-Infinity`, outside strings.
    NonFinite(f64),
    /// A `\uXXXX` escape of a surrogate without its other half.
    Surrogate { code: u16, in_name: bool },
}

/// One finding: where it is in the line, its length, and the path of the value it is in
/// (`record.a.b[2]`; the top-level key first).
#[derive(Debug, Clone, PartialEq)]
pub struct Spot {
    pub at: usize,
    pub len: usize,
    pub found: Found,
    pub path: Vec<String>,
}

impl Spot {
    /// Whether it is inside the message's `record`.
    pub fn in_record(&self) -> bool {
        self.path.first().is_some_and(|k| k == "record") && self.path.len() > 1
    }

    /// The field it is in: within the record, the record's field path; else the
    /// envelope's.
    pub fn field(&self) -> String {
        let path = if self.in_record() {
            &self.path[1..]
        } else {
            &self.path[..]
        };
        let mut out = String::new();
        for segment in path {
            if !segment.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
        out
    }

    /// Why the spot makes the line or the record unusable, for messages.
    pub fn describe(&self) -> String {
        let field = self.field();
        match self.found {
            Found::NonFinite(value) => format!(
                "field {field:?}: {} is not JSON; only float columns of a record take NaN and Infinity",
                non_finite_name(value)
            ),
            Found::Surrogate { code, in_name } => {
                let (which, missing) = if (0xD800..0xDC00).contains(&code) {
                    ("leading", "no trailing surrogate after it")
                } else {
                    ("trailing", "no leading surrogate before it")
                };
                let place = if in_name {
                    format!("the field name {field:?}")
                } else {
                    format!("field {field:?}")
                };
                let hint = if self.in_record() {
                    "; set \"lone_surrogates\": \"replace\" to store U+FFFD instead"
                } else {
                    ""
                };
                format!(
                    "{place} holds \\u{code:04x}, a lone {which} surrogate escape ({missing}), which is not Unicode text{hint}"
                )
            }
        }
    }
}

/// How a non-finite float is spelled in the input and in messages.
pub fn non_finite_name(value: f64) -> &'static str {
    if value.is_nan() {
        "NaN"
    } else if value > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// A line rewritten to JSON serde_json accepts, and what was rewritten.
#[derive(Debug)]
pub struct Rewritten {
    pub text: String,
    pub spots: Vec<Spot>,
    /// The message's top-level `stream`, when it is a string.
    pub stream: Option<String>,
}

impl Rewritten {
    /// The non-finite tokens, by where they are in `text`.
    pub fn marks(&self) -> Marks {
        Marks {
            base: self.text.as_ptr() as usize,
            spots: self
                .spots
                .iter()
                .filter_map(|s| match s.found {
                    Found::NonFinite(value) => Some((s.at, s.len, value)),
                    Found::Surrogate { .. } => None,
                })
                .collect(),
        }
    }
}

/// The non-finite tokens of a rewritten line, found again by the address of the text a
/// decoder holds (a slice of that line).
#[derive(Debug)]
pub struct Marks {
    base: usize,
    spots: Vec<(usize, usize, f64)>,
}

impl Marks {
    fn offset(&self, text: &str) -> usize {
        (text.as_ptr() as usize).wrapping_sub(self.base)
    }

    /// The value of the token `text` is, if it is one.
    pub fn value_at(&self, text: &str) -> Option<f64> {
        let at = self.offset(text);
        self.spots
            .iter()
            .find(|(start, len, _)| *start == at && *len == text.len())
            .map(|s| s.2)
    }

    /// The first token within `text`, if any.
    pub fn within(&self, text: &str) -> Option<f64> {
        let at = self.offset(text);
        self.spots
            .iter()
            .find(|(start, _, _)| (at..at.saturating_add(text.len())).contains(start))
            .map(|s| s.2)
    }
}

/// How deep objects and arrays are followed (serde_json's own limit).
const MAX_DEPTH: usize = 128;

/// Finds the tokens and escapes of the module comment in `line` and rewrites them;
/// None when there are none, or when the line is not JSON for another reason too.
pub fn rewrite(line: &str) -> Option<Rewritten> {
    let mut reader = Reader {
        bytes: line.as_bytes(),
        pos: 0,
        out: line.as_bytes().to_vec(),
        spots: Vec::new(),
        path: Vec::new(),
        stream: None,
    };
    reader.value(0)?;
    reader.ws();
    if reader.pos != reader.bytes.len() || reader.spots.is_empty() {
        return None;
    }
    let text = String::from_utf8(reader.out).ok()?;
    Some(Rewritten {
        text,
        spots: reader.spots,
        stream: reader.stream,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    spots: Vec<Spot>,
    path: Vec<String>,
    stream: Option<String>,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.ws();
        let found = self.bytes.get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.bytes[self.pos..].starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        self.ws();
        match *self.bytes.get(self.pos)? {
            b'{' if depth < MAX_DEPTH => self.object(depth),
            b'[' if depth < MAX_DEPTH => self.array(depth),
            b'"' => self.string(false).map(|_| ()),
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.literal(b"null").then_some(()),
            b'N' => self.non_finite(b"NaN", b"0.0", f64::NAN),
            b'I' => self.non_finite(b"Infinity", b"0.000000", f64::INFINITY),
            b'-' if self.bytes[self.pos..].starts_with(b"-Infinity") => {
                self.non_finite(b"-Infinity", b"-0.000000", f64::NEG_INFINITY)
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn non_finite(&mut self, word: &[u8], replacement: &[u8], value: f64) -> Option<()> {
        let at = self.pos;
        if !self.literal(word) {
            return None;
        }
        self.out[at..at + word.len()].copy_from_slice(replacement);
        self.spots.push(Spot {
            at,
            len: word.len(),
            found: Found::NonFinite(value),
            path: self.path.clone(),
        });
        Some(())
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        // The grammar's details are serde_json's to check on the rewritten line.
        (self.pos > start).then_some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            self.ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return None;
            }
            let found_before = self.spots.len();
            let key = self.string(true)?;
            for spot in &mut self.spots[found_before..] {
                spot.path.push(key.clone());
            }
            if !self.eat(b':') {
                return None;
            }
            self.path.push(key);
            let start = self.pos;
            self.value(depth + 1)?;
            let key = self.path.pop()?;
            if depth == 0 && key == "stream" {
                let text = std::str::from_utf8(&self.out[start..self.pos]).ok()?;
                self.stream = serde_json::from_str(text.trim()).ok();
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.pos += 1;
        if self.eat(b']') {
            return Some(());
        }
        let mut index = 0;
        loop {
            self.path.push(format!("[{index}]"));
            self.value(depth + 1)?;
            self.path.pop();
            index += 1;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b']').then_some(());
        }
    }

    /// A string at the position; returns its text as far as it can be read (lone
    /// surrogates as U+FFFD), for keys and the stream name.
    fn string(&mut self, is_name: bool) -> Option<String> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match *self.bytes.get(self.pos)? {
                b'"' => break,
                b'\\' => {
                    if self.bytes.get(self.pos + 1) == Some(&b'u') {
                        self.unicode_escape(is_name)?;
                    } else {
                        self.pos += 2;
                    }
                }
                _ => self.pos += 1,
            }
        }
        let end = self.pos;
        self.pos += 1;
        let text = std::str::from_utf8(&self.out[start - 1..end + 1]).ok()?;
        Some(serde_json::from_str(text).unwrap_or_else(|_| text.to_owned()))
    }

    /// A `\uXXXX` escape at the position: a surrogate pair is stepped over, a lone
    /// surrogate noted and rewritten.
    fn unicode_escape(&mut self, in_name: bool) -> Option<()> {
        let code = self.hex_at(self.pos)?;
        let at = self.pos;
        self.pos += 6;
        let lone = match code {
            0xD800..=0xDBFF => {
                let next = (self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u"))
                    .then(|| self.hex_at(self.pos))
                    .flatten();
                match next {
                    Some(0xDC00..=0xDFFF) => {
                        self.pos += 6;
                        false
                    }
                    _ => true,
                }
            }
            0xDC00..=0xDFFF => true,
            _ => false,
        };
        if lone {
            self.out[at..at + 6].copy_from_slice(b"\\ufffd");
            self.spots.push(Spot {
                at,
                len: 6,
                found: Found::Surrogate { code, in_name },
                path: self.path.clone(),
            });
        }
        Some(())
    }

    fn hex_at(&self, at: usize) -> Option<u16> {
        let hex = self.bytes.get(at + 2..at + 6)?;
        u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_non_finite_tokens_in_place_with_their_paths() {
        let line = r#"{"type":"RECORD","stream":"s","record":{"x":NaN,"l":[1,Infinity,-Infinity],"s":"NaN"}}"#;
        let found = rewrite(line).unwrap();
        assert_eq!(found.text.len(), line.len());
        let value: serde_json::Value = serde_json::from_str(&found.text).unwrap();
        assert_eq!(value["record"]["s"], "NaN");
        assert_eq!(found.stream.as_deref(), Some("s"));
        let fields: Vec<String> = found.spots.iter().map(Spot::field).collect();
        assert_eq!(fields, ["x", "l[1]", "l[2]"]);
        assert!(found.spots.iter().all(Spot::in_record));
        let marks = found.marks();
        let spot = &found.spots[1];
        let text = &found.text[spot.at..spot.at + spot.len];
        assert_eq!(marks.value_at(text), Some(f64::INFINITY));
        assert_eq!(
            marks.within(&found.text[spot.at - 3..]),
            Some(f64::INFINITY)
        );
        assert_eq!(marks.value_at(&found.text[..3]), None);
        assert!(
            found.spots[0]
                .describe()
                .contains(r#"field "x": NaN is not JSON"#)
        );
    }

    #[test]
    fn finds_lone_surrogates_and_steps_over_pairs() {
        let line = r#"{"record":{"a":"x\udc00y","b":"\ud83d\ude00","c\ud800":1},"stream":"s"}"#;
        let found = rewrite(line).unwrap();
        assert_eq!(found.spots.len(), 2);
        let value: serde_json::Value = serde_json::from_str(&found.text).unwrap();
        assert_eq!(value["record"]["a"], "x\u{fffd}y");
        assert_eq!(value["record"]["b"], "😀");
        let trailing = found.spots[0].describe();
        assert!(
            trailing.contains(r#"field "a" holds \udc00, a lone trailing surrogate"#),
            "{trailing}"
        );
        let leading = found.spots[1].describe();
        assert!(
            leading.contains("the field name \"c\u{fffd}\"") && leading.contains("leading"),
            "{leading}"
        );
    }

    #[test]
    fn gives_up_on_lines_broken_otherwise_or_clean() {
        for line in [
            r#"{"a":NaN"#,
            r#"{"a":NaN} x"#,
            r#"{"a":Nan}"#,
            r#"{"a":1}"#,
            r#"{"a":"\u12"}"#,
            "[",
        ] {
            assert!(rewrite(line).is_none(), "{line}");
        }
        let found = rewrite(r#"{"type":"STATE","value":{"x":-Infinity}}"#).unwrap();
        assert!(!found.spots[0].in_record());
        assert_eq!(found.spots[0].field(), "value.x");
    }
}
