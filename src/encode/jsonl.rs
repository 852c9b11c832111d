//! JSONL: one JSON object per record and line (`\n`), keys in the schema's column
//! order, every column present (null as `null`).
//!
//! Values are rendered by `text`: integers and decimals as JSON numbers with every
//! digit (never through a float), floats in their shortest round-trip form, date-times, dates and times as strings in the CSV
//! renderings, structs and lists as nested JSON, JSON columns as the JSON received.
//! The undeclared fields kept in `_sdc_extra` are written as fields of the record's
//! object again, so a stream whose schema declares no properties gets its records
//! back as they came.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::failed;
use super::text::{self, push_json_string};
use crate::error::Result;
use crate::schema::EXTRA_FIELDS;

pub struct JsonlEncoder<W: Write> {
    out: W,
    schema: SchemaRef,
    /// Per column, its `"name":`; None for the undeclared fields' column, whose
    /// fields are written back into the object (so a record kept whole is the line).
    keys: Vec<Option<Vec<u8>>>,
    text: Vec<u8>,
    value: Vec<u8>,
}

impl<W: Write> JsonlEncoder<W> {
    pub fn new(schema: &SchemaRef, out: W) -> Result<Self> {
        let keys = schema
            .fields()
            .iter()
            .map(|field| {
                if field.metadata().contains_key(EXTRA_FIELDS) {
                    return None;
                }
                let mut key = Vec::new();
                push_json_string(field.name(), &mut key);
                key.push(b':');
                Some(key)
            })
            .collect();
        Ok(JsonlEncoder {
            out,
            schema: schema.clone(),
            keys,
            text: Vec::new(),
            value: Vec::new(),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = text::columns(batch, &self.schema);
        let (text, value) = (&mut self.text, &mut self.value);
        text.clear();
        for row in 0..batch.num_rows() {
            text.push(b'{');
            let mut first = true;
            for (key, column) in self.keys.iter().zip(&columns) {
                value.clear();
                column.render_json(row, value);
                let part: &[u8] = match key {
                    Some(key) => {
                        if !first {
                            text.push(b',');
                        }
                        text.extend_from_slice(key);
                        value
                    }
                    // The fields of `{...}`; nothing for null or `{}`.
                    None => match value.strip_prefix(b"{").and_then(|v| v.strip_suffix(b"}")) {
                        Some(fields) if !fields.is_empty() => {
                            if !first {
                                text.push(b',');
                            }
                            fields
                        }
                        _ => continue,
                    },
                };
                text.extend_from_slice(part);
                first = false;
            }
            text.extend_from_slice(b"}\n");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::batch::{Batch, DecodeOptions};
    use crate::metadata::Envelope;
    use crate::schema::{StreamSchema, TypeOptions};

    #[test]
    fn one_object_per_line_with_exact_values() {
        let schema = r#"{"properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]},
            "amount": {"type": "number", "multipleOf": 0.01}, "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}}, "raw": {}}}"#;
        let schema = StreamSchema::from_json("s", schema, &[], &TypeOptions::default()).unwrap();
        let mut batch = Batch::new(Arc::new(schema), DecodeOptions::default());
        let records = [
            r#"{"id": 9007199254740993, "name": "a\"b", "amount": 123456789012345678901234.56, "at": "2024-01-02T03:04:05+01:00", "tags": ["x"], "raw": {"k": [1, 2.50]}}"#,
            r#"{"id": -1, "name": null, "tags": []}"#,
        ];
        for (n, record) in records.iter().enumerate() {
            batch
                .append(record, n as u64, &Envelope::default())
                .unwrap();
        }
        let batch = batch.finish().unwrap();
        let mut encoder = JsonlEncoder::new(&batch.schema(), Vec::new()).unwrap();
        encoder.write(&batch).unwrap();
        let text = String::from_utf8(encoder.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"id":9007199254740993,"name":"a\"b","amount":123456789012345678901234.56,"at":"2024-01-02T02:04:05Z","tags":["x"],"raw":{"k":[1,2.50]}}"#,
                "\n",
                r#"{"id":-1,"name":null,"amount":null,"at":null,"tags":[],"raw":null}"#,
                "\n"
            )
        );
    }
}
