//! Any bytes, decoded as records of a schema with every column type (nested structs
//! and lists, decimals, timestamps; with and without the metadata columns): each record
//! is taken or refused, never a panic, and the buffer always yields a consistent Arrow
//! batch.
#![no_main]

mod fixture;

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use fixture::SCHEMA;
use target_s3::batch::{Batch, DecodeOptions};
use target_s3::metadata::Envelope;
use target_s3::schema::{StreamSchema, TypeOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let keys = vec!["id".to_owned()];
    for (lenient, metadata_columns) in [(false, false), (true, false), (false, true)] {
        let types = TypeOptions {
            metadata_columns,
            ..TypeOptions::default()
        };
        let schema = StreamSchema::from_json("s", SCHEMA, &keys, &types).unwrap();
        let options = DecodeOptions {
            lenient,
            ..DecodeOptions::default()
        };
        let mut batch = Batch::new(Arc::new(schema), options);
        for (n, line) in text.lines().enumerate() {
            let _ = batch.append(line, n as u64 + 1, &Envelope::default());
        }
        let rows = batch.rows();
        let records = batch.finish().expect("a buffer always makes a valid batch");
        assert_eq!(records.num_rows(), rows);
    }
});
