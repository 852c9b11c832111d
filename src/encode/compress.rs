//! Whole-object compression for the text formats: a writer that compresses what it is
//! given as it goes and passes the compressed bytes on, so an object is never held
//! whole, compressed or not. One gzip member or one zstd frame per object.

use std::io::{self, Write};

use flate2::write::GzEncoder;

use crate::encode::{Codec, Compression};

pub enum Compressed<W: Write> {
    Plain(W),
    Gzip(GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressed<W> {
    /// A writer for `compression`; codecs other than gzip and zstd (Parquet's) pass
    /// the bytes through.
    pub fn new(compression: Compression, out: W) -> io::Result<Self> {
        Ok(match compression.codec {
            Codec::Gzip => {
                let level = flate2::Compression::new(compression.level.unwrap_or(6));
                Compressed::Gzip(GzEncoder::new(out, level))
            }
            Codec::Zstd => {
                let level = compression.level.map_or(0, |l| l as i32);
                Compressed::Zstd(zstd::stream::write::Encoder::new(out, level)?)
            }
            _ => Compressed::Plain(out),
        })
    }

    /// The writer underneath.
    pub fn get_mut(&mut self) -> &mut W {
        match self {
            Compressed::Plain(w) => w,
            Compressed::Gzip(e) => e.get_mut(),
            Compressed::Zstd(e) => e.get_mut(),
        }
    }

    /// Writes what is still held and the stream's end (gzip's trailer, zstd's frame
    /// end); returns the writer underneath.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressed::Plain(w) => Ok(w),
            Compressed::Gzip(e) => e.finish(),
            Compressed::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressed<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Compressed::Plain(w) => w.write(data),
            Compressed::Gzip(e) => e.write(data),
            Compressed::Zstd(e) => e.write(data),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Compressed::Plain(w) => w.write_all(data),
            Compressed::Gzip(e) => e.write_all(data),
            Compressed::Zstd(e) => e.write_all(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressed::Plain(w) => w.flush(),
            Compressed::Gzip(e) => e.flush(),
            Compressed::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Writes `text` in small pieces into a writer that counts how often it is
    /// written to, then reads it back.
    fn round_trip(codec: Codec, level: Option<u32>) {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{i},row {i}\r\n").into_bytes())
            .collect();
        let mut writer = Compressed::new(Compression { codec, level }, Vec::new()).unwrap();
        for piece in text.chunks(1000) {
            writer.write_all(piece).unwrap();
        }
        let written_before_end = writer.get_mut().len();
        let bytes = writer.finish().unwrap();
        assert!(
            written_before_end > 0,
            "{codec:?}: nothing passed on before the end"
        );
        if level != Some(0) {
            assert!(bytes.len() < text.len() / 3, "{codec:?}: {}", bytes.len());
        }
        let mut back = Vec::new();
        match codec {
            Codec::Gzip => flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut back)
                .unwrap(),
            _ => zstd::stream::read::Decoder::new(&bytes[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap(),
        };
        assert_eq!(back, text);
    }

    #[test]
    fn gzip_and_zstd_stream_and_read_back() {
        round_trip(Codec::Gzip, Some(6));
        round_trip(Codec::Gzip, Some(0));
        round_trip(Codec::Zstd, Some(3));
        round_trip(Codec::Zstd, Some(19));
    }
}
