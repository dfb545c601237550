//! Config errors that say where the mistake is and what would be right.
//!
//! Every error carries the field path in the file's own terms
//! (`connectors[1].retryConfig.jitterRatio`) and, where it can be known, the file, line and
//! column or the environment variable it came from. A message echoes a bad value only for
//! a universal field written in the file (`(got 1.5)`); never a value below
//! `providerConfig` or `webhook` unless the provider shows a known-safe one itself, and
//! never one from the environment, so a secret in the wrong place does not leak through
//! an error.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A position in a config file (1-based line and column).
    File {
        /// The file as it was given.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// No better place is known (e.g. a connector defined nowhere).
    Unknown,
}

/// One mistake in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the mistake is.
    pub location: Location,
    /// Field path in the file's terms, e.g. `connectors[1].retryConfig.jitterRatio`.
    pub path: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: Location::Unknown,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}: ", path.display())?
            }
            Location::Env { var } => write!(f, "environment variable {var}: ")?,
            Location::Unknown => {}
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every mistake found in one load: a person fixes them all in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The messages alone, in order; handy in tests and in JSON output.
    pub fn messages(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problems(f, "the connector configuration", &self.0)
    }
}

/// `N problems in <subject>:` and one indented line per problem: how every list of
/// mistakes (config, runtime settings) reads.
pub fn write_problems(
    f: &mut fmt::Formatter<'_>,
    subject: &str,
    problems: &[impl fmt::Display],
) -> fmt::Result {
    let n = problems.len();
    write!(
        f,
        "{n} problem{} in {subject}:",
        if n == 1 { "" } else { "s" }
    )?;
    for p in problems {
        write!(f, "\n  {p}")?;
    }
    Ok(())
}

impl std::error::Error for ConfigErrors {}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A mistake inside one connector, relative to the connector object (for provider checks:
/// relative to `providerConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where below the connector (or below `providerConfig`).
    pub path: Vec<PathSegment>,
    /// What is wrong and what would be right (the value is added by the loader where it
    /// is safe to show).
    pub message: String,
}

impl FieldError {
    /// A mistake at `path` (object keys from the outside in).
    pub fn new(path: &[&str], message: impl Into<String>) -> Self {
        Self {
            path: path
                .iter()
                .map(|k| PathSegment::Key((*k).to_owned()))
                .collect(),
            message: message.into(),
        }
    }

    /// A mistake at a path given as segments.
    pub fn at(path: Vec<PathSegment>, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }
}

/// `prefix` followed by the path in the file's notation: `connectors[1].retryConfig.jitterRatio`.
pub(crate) fn render_path(prefix: &str, segs: &[PathSegment]) -> String {
    let mut out = prefix.to_owned();
    for seg in segs {
        match seg {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// A path below a connector in the file's notation, e.g. `retryConfig.jitterRatio`.
pub fn render_field_path(segs: &[PathSegment]) -> String {
    render_path("", segs)
}

/// The message for a field nobody declared, with the likely intended one.
pub(crate) fn unknown_field(key: &str, known: &[&str]) -> String {
    let listed = known
        .iter()
        .filter(|k| !k.starts_with('$'))
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match closest(key, known.iter().copied()) {
        Some(k) => format!("unknown field \"{key}\", did you mean \"{k}\"?"),
        None => format!("unknown field \"{key}\"; expected one of {listed}"),
    }
}

/// The known name closest to a misspelt one, when it is close enough to be the likely intent.
pub(crate) fn closest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = unknown.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars; config field names are short, so O(n·m) is nothing.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_find_the_intended_field() {
        let known = ["pollIntervalMs", "requestTimeoutMs", "maxRetries"];
        assert_eq!(closest("pollIntervalMS", known), Some("pollIntervalMs"));
        assert_eq!(closest("pollInterval", known), Some("pollIntervalMs"));
        assert_eq!(closest("maxRetry", known), Some("maxRetries"));
        assert_eq!(closest("colour", known), None);
    }
}
