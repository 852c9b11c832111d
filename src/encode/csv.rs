//! CSV: RFC 4180 text (CRLF line ends, quotes only where needed) in the configured
//! dialect (delimiter, quote character, header row, null text), with a header row of
//! the schema's column names, in the schema's order.
//!
//! Values are rendered by `text`. A null is the null text (empty by default); a value
//! that would read back as a null, or that holds the delimiter, the quote or a line
//! break, is quoted, with quotes doubled. With the default empty null text an empty
//! string is therefore `""`, and a null nothing at all.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::failed;
use super::text::{self, Column};
use crate::encode::CsvDialect;
use crate::error::Result;

pub struct CsvEncoder<W: Write> {
    out: W,
    writer: FieldWriter,
    schema: SchemaRef,
    text: Vec<u8>,
}

impl<W: Write> CsvEncoder<W> {
    /// Starts an object, with its header row when the dialect has one.
    pub fn new(schema: &SchemaRef, dialect: &CsvDialect, mut out: W) -> Result<Self> {
        let writer = FieldWriter::new(dialect);
        if dialect.header {
            let mut header = Vec::new();
            for (i, field) in schema.fields().iter().enumerate() {
                if i > 0 {
                    header.push(writer.delimiter);
                }
                writer.push_field(field.name().as_bytes(), &mut header);
            }
            header.extend_from_slice(b"\r\n");
            out.write_all(&header).map_err(failed)?;
        }
        Ok(CsvEncoder {
            out,
            writer,
            schema: schema.clone(),
            text: Vec::new(),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = text::columns(batch, &self.schema);
        let text = &mut self.text;
        text.clear();
        let mut cell = Vec::with_capacity(256);
        for row in 0..batch.num_rows() {
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    text.push(self.writer.delimiter);
                }
                self.writer.render(column, row, text, &mut cell);
            }
            text.extend_from_slice(b"\r\n");
        }
        self.out.write_all(text).map_err(failed)
    }

    pub fn writer_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn finish(self) -> Result<W> {
        Ok(self.out)
    }
}

/// Writes fields in one dialect.
struct FieldWriter {
    delimiter: u8,
    quote: u8,
    null_text: Vec<u8>,
    /// Numbers, booleans, dates and times can be written without a look: neither the
    /// delimiter nor the quote can be in them, nor can they equal the null text.
    plain_scalars: bool,
}

/// What a number, boolean, date or time can be made of.
fn in_scalars(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.' | b':')
}

impl FieldWriter {
    fn new(dialect: &CsvDialect) -> FieldWriter {
        let null_text = dialect.null_text.as_bytes().to_vec();
        let null_is_scalar_like = !null_text.is_empty() && null_text.iter().all(|&b| in_scalars(b));
        FieldWriter {
            delimiter: dialect.delimiter,
            quote: dialect.quote,
            plain_scalars: !in_scalars(dialect.delimiter)
                && !in_scalars(dialect.quote)
                && !null_is_scalar_like,
            null_text,
        }
    }

    /// Appends one field of `column`.
    fn render(&self, column: &Column, row: usize, out: &mut Vec<u8>, cell: &mut Vec<u8>) {
        if column.is_null(row) {
            out.extend_from_slice(&self.null_text);
        } else if let Some(text) = column.text(row) {
            self.push_field(text.as_bytes(), out);
        } else if self.plain_scalars && column.is_scalar() {
            column.render_text(row, out);
        } else {
            cell.clear();
            column.render_text(row, cell);
            self.push_field(cell, out);
        }
    }

    /// Appends a field, quoted when it holds the delimiter, the quote or a line break,
    /// or would read back as a null (an empty string when the null text is empty).
    fn push_field(&self, text: &[u8], out: &mut Vec<u8>) {
        let needs_quotes = text == self.null_text.as_slice()
            || memchr::memchr3(self.delimiter, self.quote, b'\n', text).is_some()
            || memchr::memchr(b'\r', text).is_some();
        if !needs_quotes {
            out.extend_from_slice(text);
            return;
        }
        out.push(self.quote);
        let mut rest = text;
        while let Some(i) = memchr::memchr(self.quote, rest) {
            out.extend_from_slice(&rest[..=i]);
            out.push(self.quote);
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        out.push(self.quote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(dialect: &CsvDialect, texts: &[&str]) -> String {
        let writer = FieldWriter::new(dialect);
        let mut out = Vec::new();
        for text in texts {
            writer.push_field(text.as_bytes(), &mut out);
            out.push(b'|');
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let texts = ["plain", "a,b", "say \"hi\"", "two\nlines", "cr\r", ""];
        let expected = "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|\"cr\r\"|\"\"|";
        assert_eq!(fields(&CsvDialect::default(), &texts), expected);
    }

    #[test]
    fn other_dialects_quote_their_own_characters() {
        let dialect = CsvDialect {
            delimiter: b'\t',
            quote: b'\'',
            header: true,
            null_text: "\\N".into(),
        };
        let texts = ["a,b", "tab\there", "it's", "\\N", "", "\\N2"];
        let expected = "a,b|'tab\there'|'it''s'|'\\N'||\\N2|";
        assert_eq!(fields(&dialect, &texts), expected);
        assert!(FieldWriter::new(&dialect).plain_scalars);
        let scalar_like = CsvDialect {
            null_text: "NULL".into(),
            ..CsvDialect::default()
        };
        assert!(!FieldWriter::new(&scalar_like).plain_scalars);
        let dot = CsvDialect {
            delimiter: b'.',
            ..CsvDialect::default()
        };
        assert!(!FieldWriter::new(&dot).plain_scalars);
        assert_eq!(fields(&dot, &["1.5"]), "\"1.5\"|");
    }
}
