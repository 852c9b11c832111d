//! A byte scanner for the plain JSON that taps write nearly always: strings without
//! escapes, numbers taken as their text, values skipped without being built.
//!
//! Owns: recognising that plain subset exactly and quickly. It never reports an error:
//! anything it does not recognise (an escape, a control character, a malformed number,
//! the end of input) makes it answer `None`/`false`, and its caller hands the whole line
//! to the full parser (`protocol`, serde_json), which accepts or rejects it with its own
//! message. So the scanner may be strict and narrow, never lenient.
//! Must not touch: what values mean. Callers decide that.

/// A position in one input line.
pub struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

/// How deep `skip_value` follows nested arrays and objects before giving up.
const MAX_SKIP_DEPTH: usize = 64;

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    /// Consumes `byte` (after whitespace) if it comes next.
    pub fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.pos += usize::from(found);
        found
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string with no escapes and no control characters, without its quotes.
    pub fn plain_str(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let end = start + string_end(&self.bytes()[start..])?;
        self.pos = end + 1;
        // Both ends sit next to an ASCII quote, so they are character boundaries.
        self.text.get(start..end)
    }

    /// Consumes `literal` if it comes next: a word (`true`, `false`, `null`) or a
    /// string with its quotes (see `quoted`). Field names mostly come in the schema's
    /// order: checking the expected one costs a compare of known length, not a search
    /// for the closing quote. (A byte loop: these are a few bytes, shorter than a call
    /// into memcmp pays for.)
    pub fn eat_literal(&mut self, literal: &[u8]) -> bool {
        self.skip_ws();
        let found = self.bytes()[self.pos..]
            .get(..literal.len())
            .is_some_and(|next| next.iter().zip(literal).all(|(a, b)| a == b));
        if found {
            self.pos += literal.len();
        }
        found
    }

    /// A number as its text, by JSON's grammar exactly:
    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    pub fn number(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.pos;
        self.pos += usize::from(self.bytes().get(self.pos) == Some(&b'-'));
        match self.bytes().get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return None,
        }
        if self.bytes().get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes().get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes().get(self.pos) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        self.text.get(start..self.pos)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// Steps over one value of the plain subset (as `skip_value`) and gives its text.
    pub fn value_text(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let start = self.pos;
        if !self.skip_value() {
            return None;
        }
        self.text.get(start..self.pos)
    }

    /// Steps over one value of the plain subset: objects and arrays (nested up to a
    /// limit), plain strings, numbers, `true`, `false` and `null`.
    pub fn skip_value(&mut self) -> bool {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'"') => self.plain_str().is_some(),
            Some(b'-' | b'0'..=b'9') => self.number().is_some(),
            Some(b't') => self.eat_literal(b"true"),
            Some(b'f') => self.eat_literal(b"false"),
            Some(b'n') => self.eat_literal(b"null"),
            Some(b'[') if depth < MAX_SKIP_DEPTH => {
                self.pos += 1;
                self.items(b']', |s| s.skip_nested(depth + 1))
            }
            Some(b'{') if depth < MAX_SKIP_DEPTH => {
                self.pos += 1;
                self.items(b'}', |s| {
                    s.plain_str().is_some() && s.eat(b':') && s.skip_nested(depth + 1)
                })
            }
            _ => false,
        }
    }

    /// The rest of an array or object whose opening bracket was just consumed: items
    /// (each read by `item`) separated by commas, then `close`.
    pub fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> bool) -> bool {
        if self.eat(close) {
            return true;
        }
        loop {
            if !item(self) {
                return false;
            }
            if self.eat(b',') {
                continue;
            }
            return self.eat(close);
        }
    }
}

/// Where the closing quote of a plain string is: the offset of the first quote, or None
/// when a backslash or a control character comes first, or no quote does. Eight bytes
/// at a time in a u64: most strings are short, and a library search costs more to
/// start than this takes to finish.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Bytes below 0x20, quotes and backslashes. A borrow can flag a byte above a
        // flagged one by mistake, never below it, so the lowest flag is exact.
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let flags = below_space
            | zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')));
        if flags != 0 {
            return quote_at(bytes, at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let found = chunks.remainder().iter().position(|&b| breaks_plain(b))?;
    quote_at(bytes, at + found)
}

/// A byte that ends a plain string or rules it out: a quote, a backslash (an escape)
/// or a control character.
fn breaks_plain(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// `text` as a JSON string with its quotes, for `eat_literal`, when it is plain (needs
/// no escape).
pub fn quoted(text: &str) -> Option<Box<[u8]>> {
    let plain = !text.bytes().any(breaks_plain);
    plain.then(|| format!("\"{text}\"").into_bytes().into_boxed_slice())
}

/// Whether two short texts are equal. Field names are a few bytes long, and a plain
/// loop compares them sooner than a call into the C library's memcmp would.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn quote_at(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes[at] == b'"').then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eats_a_quoted_name_only_when_whole() {
        let mut s = Scanner::new(r#" "id": 1"#);
        assert!(!s.eat_literal(br#""i""#));
        assert!(!s.eat_literal(br#""idx""#));
        assert!(s.eat_literal(br#""id""#) && s.eat(b':'));
        assert!(!Scanner::new(r#""id"#).eat_literal(br#""id""#));
        assert_eq!(quoted("id").as_deref(), Some(&br#""id""#[..]));
        assert!(quoted("a\"b").is_none() && quoted("a\\b").is_none() && quoted("a\tb").is_none());
    }

    #[test]
    fn reads_plain_strings_only() {
        assert_eq!(Scanner::new(r#" "abc" "#).plain_str(), Some("abc"));
        assert_eq!(Scanner::new(r#""héllo""#).plain_str(), Some("héllo"));
        assert_eq!(Scanner::new(r#""""#).plain_str(), Some(""));
        assert_eq!(Scanner::new(r#""a\"b""#).plain_str(), None);
        assert_eq!(Scanner::new("\"a\tb\"").plain_str(), None);
        assert_eq!(Scanner::new(r#""abc"#).plain_str(), None);
        // Every position within and after the first eight bytes.
        for n in 0..20 {
            let text = "x".repeat(n);
            assert_eq!(
                Scanner::new(&format!("\"{text}\"")).plain_str(),
                Some(&text[..])
            );
            for bad in ["\\", "\n", "\u{1f}"] {
                let line = format!("\"{text}{bad}\"");
                assert_eq!(Scanner::new(&line).plain_str(), None, "{line:?}");
            }
        }
        assert_eq!(Scanner::new("abc").plain_str(), None);
    }

    #[test]
    fn reads_numbers_by_the_json_grammar() {
        for good in [
            "0",
            "-0",
            "12",
            "-12.50",
            "1e5",
            "1E+5",
            "2.5e-3",
            "123456789012345678901",
        ] {
            assert_eq!(Scanner::new(good).number(), Some(good), "{good}");
        }
        for bad in ["-", "+1", ".5", "1.", "1e", "1e+", "-a"] {
            assert_eq!(Scanner::new(bad).number(), None, "{bad}");
        }
        // A leading zero ends the number; what follows is the caller's to refuse.
        let mut s = Scanner::new("01");
        assert_eq!(s.number(), Some("0"));
        assert!(!s.at_end());
    }

    #[test]
    fn skips_nested_values() {
        let mut s = Scanner::new(r#"{"a": [1, {"b": null}, true, "x"], "c": {}} , 7"#);
        assert!(s.skip_value());
        assert!(s.eat(b','));
        assert!(s.skip_value());
        assert!(s.at_end());
        for bad in [
            r#"{"a" 1}"#,
            "[1,]",
            "[1 2]",
            r#"{"a":"\n"}"#,
            "nul",
            "{",
            "[[[[[",
        ] {
            assert!(!Scanner::new(bad).skip_value(), "{bad}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(!Scanner::new(&deep).skip_value());
    }
}
