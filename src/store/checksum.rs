//! Request checksums: the full-object value each upload carries as a plain header
//! (`x-amz-checksum-crc64nvme`, `x-amz-checksum-crc32c` or `Content-MD5`), so the store
//! verifies on receipt what was encoded. Computed here, never by the SDK: its own
//! checksums come as aws-chunked trailers, which many S3-compatible stores refuse.
//!
//! Owns: the algorithms, their names and values. Must not touch: requests.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crc_fast::{CrcAlgorithm, Digest};
use md5::Digest as _;

/// A checksum algorithm, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Crc64Nvme,
    Crc32c,
    Md5,
    None,
}

impl Algorithm {
    /// The order `auto` tries them in at the start-up check.
    pub const STRONGEST_FIRST: [Algorithm; 3] =
        [Algorithm::Crc64Nvme, Algorithm::Crc32c, Algorithm::Md5];

    /// From the `checksum_algorithm` setting; `None` for `auto`.
    pub fn from_setting(name: &str) -> Option<Algorithm> {
        match name {
            "crc64nvme" => Some(Algorithm::Crc64Nvme),
            "crc32c" => Some(Algorithm::Crc32c),
            "md5" => Some(Algorithm::Md5),
            "none" => Some(Algorithm::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc64Nvme => "crc64nvme",
            Algorithm::Crc32c => "crc32c",
            Algorithm::Md5 => "md5",
            Algorithm::None => "none",
        }
    }

    /// Whether S3 checks it over a whole multipart object (MD5 is checked per part only).
    pub fn full_object(self) -> bool {
        matches!(self, Algorithm::Crc64Nvme | Algorithm::Crc32c)
    }

    /// The header value for `data` (base64 of the big-endian digest), if any.
    pub fn of(self, data: &[u8]) -> Option<String> {
        let mut running = Running::new(self);
        running.update(data);
        running.value()
    }
}

/// A checksum over bytes given piece by piece (an object's parts as they are encoded).
#[derive(Clone)]
pub struct Running {
    algorithm: Algorithm,
    crc: Option<Digest>,
    md5: Option<md5::Md5>,
}

impl Running {
    pub fn new(algorithm: Algorithm) -> Running {
        let crc = match algorithm {
            Algorithm::Crc64Nvme => Some(Digest::new(CrcAlgorithm::Crc64Nvme)),
            Algorithm::Crc32c => Some(Digest::new(CrcAlgorithm::Crc32Iscsi)),
            Algorithm::Md5 | Algorithm::None => None,
        };
        let md5 = (algorithm == Algorithm::Md5).then(md5::Md5::new);
        Running {
            algorithm,
            crc,
            md5,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(crc) = &mut self.crc {
            crc.update(data);
        }
        if let Some(md5) = &mut self.md5 {
            md5.update(data);
        }
    }

    /// Appends the checksum of the bytes that follow (the next part's), as if they had
    /// been given here; only CRCs combine (an MD5 is never checked over a whole object).
    pub fn combine(&mut self, next: &Running) {
        if let (Some(crc), Some(other)) = (&mut self.crc, &next.crc) {
            crc.combine(other);
        }
    }

    /// The header value of everything given so far.
    pub fn value(&self) -> Option<String> {
        let bytes = match self.algorithm {
            Algorithm::Crc64Nvme => self.crc?.finalize().to_be_bytes().to_vec(),
            Algorithm::Crc32c => (self.crc?.finalize() as u32).to_be_bytes().to_vec(),
            Algorithm::Md5 => self.md5.clone()?.finalize().to_vec(),
            Algorithm::None => return None,
        };
        Some(STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values from the AWS SDKs' own checksum tests ("Hello world").
        assert_eq!(
            Algorithm::Crc32c.of(b"Hello world").as_deref(),
            Some("crUfeA==")
        );
        assert_eq!(
            Algorithm::Crc64Nvme.of(b"Hello world").as_deref(),
            Some("OOJZ0D8xKts=")
        );
        assert_eq!(
            Algorithm::Md5.of(b"").as_deref(),
            Some("1B2M2Y8AsgTpgAmY7PhCfg==")
        );
        assert_eq!(Algorithm::None.of(b"x"), None);
    }

    #[test]
    fn running_equals_whole() {
        for algorithm in Algorithm::STRONGEST_FIRST {
            let mut running = Running::new(algorithm);
            running.update(b"Hello ");
            running.update(b"world");
            assert_eq!(running.value(), algorithm.of(b"Hello world"));
            if algorithm.full_object() {
                let mut first = Running::new(algorithm);
                first.update(b"Hello ");
                let mut second = Running::new(algorithm);
                second.update(b"world");
                first.combine(&second);
                assert_eq!(first.value(), running.value());
            }
        }
    }
}
