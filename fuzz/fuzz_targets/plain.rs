//! The plain-record fast path against the full decoder: any bytes, as lines of records,
//! decoded both ways must give the same rows and the same refusals; a record the fast
//! path declines must leave nothing behind.
#![no_main]

mod fixture;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use fixture::SCHEMA;
use target_s3::batch::{Batch, DecodeOptions};
use target_s3::metadata::Envelope;
use target_s3::scan::Scanner;
use target_s3::schema::{StreamSchema, TypeOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = vec!["id".to_owned()];
    let schema = StreamSchema::from_json("s", SCHEMA, &keys, &TypeOptions::default()).unwrap();
    let schema = Arc::new(schema);
    let mut plain = Batch::new(schema.clone(), DecodeOptions::default());
    let mut full = Batch::new(schema, DecodeOptions::default());
    let none = Envelope::default();
    for (n, line) in text.lines().enumerate() {
        let n = n as u64 + 1;
        let rows = plain.rows();
        let mut scanner = Scanner::new(line);
        let taken = if plain.decode_plain(&mut scanner) && scanner.at_end() {
            plain.end_row(true, n, line.len(), &none)
        } else {
            plain.discard_row();
            assert_eq!(plain.rows(), rows);
            plain.append(line, n, &none)
        };
        assert_eq!(taken, full.append(line, n, &none), "{line}");
    }
    let (plain, full) = (plain.finish().unwrap(), full.finish().unwrap());
    assert_eq!(plain, full);
});
