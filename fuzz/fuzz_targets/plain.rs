//! The plain-record fast path against the full decoder: any bytes, as lines of records,
//! decoded both ways must give the same rows and the same refusals; a record the fast
//! path declines must leave nothing behind. A third buffer takes the plain rows from a
//! twin (as from a decoding thread), in runs cut at every declined line and every few
//! lines, and must end up the same too.
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
    let mut full = Batch::new(schema.clone(), DecodeOptions::default());
    let mut from_twin = Batch::new(schema, DecodeOptions::default());
    let mut twin = from_twin.twin();
    let cut_every = 1 + data.first().map_or(0, |b| b % 7) as usize;
    let none = Envelope::default();
    let mut take = |from_twin: &mut Batch, twin: &mut Batch| {
        let (rows, bytes) = (twin.rows(), twin.bytes());
        from_twin.take_rows(twin, 0..rows, 1, bytes).unwrap();
        twin.reset_twin(from_twin);
    };
    for (n, line) in text.lines().enumerate() {
        let n = n as u64 + 1;
        let rows = plain.rows();
        let mut scanner = Scanner::new(line);
        let taken = if plain.decode_plain(&mut scanner) && scanner.at_end() {
            let kept = plain.end_row(true, n, line.len(), &none);
            let mut again = Scanner::new(line);
            assert!(twin.decode_plain(&mut again));
            assert_eq!(twin.end_row(true, n, line.len(), &none), kept);
            kept
        } else {
            plain.discard_row();
            assert_eq!(plain.rows(), rows);
            take(&mut from_twin, &mut twin);
            let _ = from_twin.append(line, n, &none);
            // The twin skips the fields the full decoder has just learned to skip.
            twin.reset_twin(&from_twin);
            plain.append(line, n, &none)
        };
        assert_eq!(taken, full.append(line, n, &none), "{line}");
        if n as usize % cut_every == 0 {
            take(&mut from_twin, &mut twin);
        }
    }
    take(&mut from_twin, &mut twin);
    let (plain, full) = (plain.finish().unwrap(), full.finish().unwrap());
    assert_eq!(from_twin.finish().unwrap(), full);
    assert_eq!(plain, full);
});
