//! The configuration file: a TOML document deserialised with serde, then validated.
//!
//! [`load`] and [`parse`] return either a [`Config`] every part of the server may trust, or
//! [`ConfigErrors`] listing *every* problem found, each as `FILE: FIELD: REASON` where FIELD is
//! the path of the offending value (`subnet4[1].pool[0]`) or, for TOML syntax and type errors,
//! its line and column. Addresses, prefixes, ranges, MAC addresses and hex strings are written
//! as TOML strings and parsed here, so one bad address is reported with its path instead of
//! failing the whole file.
//!
//! The types live in [`model`]; the TOML shape and the checks in `validate`.

#[doc(hidden)]
pub mod fuzz;
pub mod model;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests6;

use std::fmt;
use std::path::Path;

pub use model::{
    AddressPool6, Config, Control, Durability, Failover, Failover6, FailoverRole, FailoverTls,
    IoMode, Ipv4Net, Ipv4NetError, Ipv6Net, Ipv6NetError, Pool4, PrefixPool6, RawOption,
    RawOption6, Reservation4, Reservation6, Server, Subnet4, Subnet6, XdpAttachMode, XdpSettings,
};

/// One problem in a configuration file, displayed as `FILE: FIELD: REASON` (or `FILE: REASON`
/// when it concerns the file as a whole, e.g. it cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file, as given to [`load`] or [`parse`].
    pub file: String,
    /// Path of the offending value in TOML terms (`server.listen[0]`,
    /// `subnet4[2].reservation[0].hw-address`), or `line L, column C` for a syntax or type
    /// error; empty when the error concerns the whole file.
    pub field: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl ConfigError {
    fn render(&self) -> String {
        if self.field.is_empty() {
            format!("{}: {}", self.file, self.reason)
        } else {
            format!("{}: {}: {}", self.file, self.field, self.reason)
        }
    }
}

/// All problems found in one configuration file, in the order they were found; never empty.
/// Displayed one [`ConfigError`] per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Number of problems.
    #[must_use]
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there are none (never true for a value returned by [`load`] or [`parse`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(e) => Err(ConfigErrors {
            errors: vec![ConfigError {
                file,
                field: String::new(),
                reason: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Parses and validates configuration `text`; `file_name` is only used in error messages.
pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    validate::parse(text, file_name)
}
