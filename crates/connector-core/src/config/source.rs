//! Where the connector list comes from: a file, a text (tests, stdin), or nothing but the
//! environment.

use std::path::{Path, PathBuf};

use super::env::{CONFIG_PATH_VAR, Environment};

/// Where the connector list comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A JSON file.
    File(PathBuf),
    /// JSON text with a name to report errors against (tests, stdin).
    Text {
        /// Shown in error locations.
        name: PathBuf,
        /// The JSON.
        text: String,
    },
    /// No file: connectors come from the environment only.
    EnvOnly,
}

impl ConfigSource {
    /// `CONNECTORS_CONFIG_PATH` when set, else `./connectors.json` when it exists, else the
    /// environment alone.
    pub fn from_env(env: &Environment) -> Self {
        match env.get(CONFIG_PATH_VAR) {
            Some(path) if !path.is_empty() => Self::File(path.into()),
            _ if Path::new("connectors.json").is_file() => Self::File("connectors.json".into()),
            _ => Self::EnvOnly,
        }
    }

    /// How to name this source in messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) | Self::Text { name: p, .. } => p.display().to_string(),
            Self::EnvOnly => "the environment".into(),
        }
    }

    /// The file's name and text; `Err` with the reason when a file cannot be read.
    pub(crate) fn read(&self) -> Result<Option<(PathBuf, String)>, String> {
        match self {
            Self::File(path) => std::fs::read_to_string(path)
                .map(|text| Some((path.clone(), text)))
                .map_err(|e| {
                    format!(
                        "cannot read config file {} ({e}); set {CONFIG_PATH_VAR} to an existing file",
                        path.display()
                    )
                }),
            Self::Text { name, text } => Ok(Some((name.clone(), text.clone()))),
            Self::EnvOnly => Ok(None),
        }
    }
}
