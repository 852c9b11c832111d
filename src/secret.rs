//! Credentials as a type that never prints them: `Debug` and `Display` show `***`,
//! so a secret key, session token or catalog credential cannot reach a log line, an
//! error or a debug dump by accident.

use std::fmt;

/// A credential: shown as `***` by `Debug` and `Display`, readable only through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}
