//! The options that say how objects are encoded: file type, compression, CSV dialect.
//! `config` reads them from the settings; the encoders take them from here.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Csv,
    Parquet,
    Jsonl,
}

impl FileType {
    pub fn extension(self) -> &'static str {
        match self {
            FileType::Csv => "csv",
            FileType::Parquet => "parquet",
            FileType::Jsonl => "jsonl",
        }
    }

    /// The codecs this file type can be written with; the first is the default.
    pub(crate) fn codecs(self) -> &'static [Codec] {
        match self {
            FileType::Csv | FileType::Jsonl => &[Codec::None, Codec::Gzip, Codec::Zstd],
            FileType::Parquet => &[
                Codec::Snappy,
                Codec::Zstd,
                Codec::Gzip,
                Codec::Lz4,
                Codec::None,
            ],
        }
    }
}

/// A compression codec: of the whole object for CSV and JSONL, of the pages inside
/// the file for Parquet (where `lz4` is Parquet's LZ4_RAW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
    Snappy,
    Lz4,
}

impl Codec {
    pub(crate) fn from_name(name: &str) -> Codec {
        match name {
            "gzip" => Codec::Gzip,
            "zstd" => Codec::Zstd,
            "snappy" => Codec::Snappy,
            "lz4" => Codec::Lz4,
            _ => Codec::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
        }
    }

    /// The levels the codec takes and its own default, if it has levels at all.
    pub(crate) fn levels(self) -> Option<(std::ops::RangeInclusive<u32>, u32)> {
        match self {
            Codec::Gzip => Some((0..=9, 6)),
            Codec::Zstd => Some((1..=22, 3)),
            _ => None,
        }
    }
}

/// A codec and its level (present exactly when the codec has levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    pub codec: Codec,
    pub level: Option<u32>,
}

/// How CSV text is written. Checked so that no choice can make a file ambiguous: the
/// delimiter, the quote and line breaks are three different characters, and the null
/// text holds none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    /// What a null is written as; a value that would read the same is quoted.
    pub null_text: String,
}

impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            delimiter: b',',
            quote: b'"',
            header: true,
            null_text: String::new(),
        }
    }
}

/// How objects are written, beyond their file type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub compression: Compression,
    pub csv: CsvDialect,
    pub parquet: ParquetCompatibility,
}

/// `parquet_compatibility`: the readers Parquet objects are shaped for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParquetCompatibility {
    /// Types every common engine reads, and a footer stating the calendar of dates.
    #[default]
    Portable,
    /// Arrow's own types: TIME and decimals up to 76 digits, no footer statements.
    Arrow,
}
