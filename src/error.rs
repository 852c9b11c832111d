//! The error type every stage returns, and how it reads on one line.
//!
//! Each variant says which part of the run failed; the message names what the user
//! can act on (a config key, an input line and stream, a bucket and key). Nothing here
//! may format a secret: config errors carry key names and public values only.

use std::fmt;

/// Where an input error was found: the 1-based line number and, when known, the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputAt {
    pub line: u64,
    pub stream: Option<String>,
}

impl fmt::Display for InputAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stream {
            Some(stream) => write!(f, "input line {}, stream {:?}", self.line, stream),
            None => write!(f, "input line {}", self.line),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or has a value outside its allowed forms.
    #[error("config: {0}")]
    Config(String),
    /// The input broke the Singer protocol or a declared type.
    #[error("{at}: {message}")]
    Input { at: InputAt, message: String },
    /// An object could not be stored.
    #[error("store: {0}")]
    Store(String),
    /// A batch could not be encoded (a bug or a resource limit, never bad input).
    #[error("encode: {0}")]
    Encode(String),
    /// Reading input or writing STATE failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A signal stopped the run.
    #[error(
        "stopped by {0}: records after the last STATE written were not all stored; run again from that STATE"
    )]
    Interrupted(&'static str),
    /// Work refused because an earlier upload failed for good (that failure is the one
    /// to report).
    #[error("not started: an earlier upload failed")]
    Halted,
}

impl Error {
    pub fn input(line: u64, stream: Option<&str>, message: impl Into<String>) -> Self {
        Error::Input {
            at: InputAt {
                line,
                stream: stream.map(str::to_owned),
            },
            message: message.into(),
        }
    }
}

impl Error {
    /// The exit code: 128 + the signal's number after a signal, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted(signal) => exit_code(signal),
            _ => 1,
        }
    }

    /// Whether this error only follows from another one (or from a stop), so that
    /// other is the one to report.
    pub fn is_consequence(&self) -> bool {
        matches!(self, Error::Halted)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
/// The signals that stop a run, by name and number. SIGQUIT stops as the others do,
/// but gives uploads already completing no time (see `grace`).
const SIGNALS: [(&str, i32); 4] = [
    ("SIGTERM", 15),
    ("SIGINT", 2),
    ("SIGHUP", 1),
    ("SIGQUIT", 3),
];

/// The exit code after `signal`: 128 + its number.
pub fn exit_code(signal: &str) -> u8 {
    let number = SIGNALS.iter().find(|(name, _)| *name == signal);
    128 + number.map_or(15, |(_, n)| *n as u8)
}
