//! Any line, parsed as a Singer message: must return a message or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use target_s3::protocol::{NoSink, parse_line};

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = parse_line(line, &mut NoSink);
    }
});
