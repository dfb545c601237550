//! `${VAR}`, `${VAR:-default}` and `${file:/path}` in provider settings, resolved at every
//! load (start-up and each SIGHUP reload).
//!
//! Credentials belong in the environment or in a mounted Kubernetes Secret, not in
//! `connectors.json`; substitution lets the file name them without holding them. Reading
//! files at every load is what makes a rotated Secret take effect with a SIGHUP.

use std::path::Path;

/// Why a string could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubstituteError {
    /// `${VAR}` with `VAR` unset and no default.
    Unset(String),
    /// `${` without its `}`.
    Unterminated,
    /// `${file:PATH}` whose file cannot be read; the reason never includes content.
    File {
        /// The path as written.
        path: String,
        /// Why (not found, permission denied, not UTF-8...).
        reason: String,
    },
}

/// Where substituted text came from, for the environment and files.
pub(crate) struct Lookup<'a> {
    /// A variable's value.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// A file's text.
    pub file: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

/// A resolved string and the references it used, so an error about the value can name
/// where it came from instead of quoting it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub text: String,
    pub references: Vec<Reference>,
}

/// One `${...}` as written, with the text it stood for (kept only while loading, to mask
/// it in messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Reference {
    /// As written: `${TOKEN}`, `${file:/run/secrets/token}`.
    pub written: String,
    value: String,
    /// Always a credential, even when it looks like a number (a catalog entry's secret
    /// parameter); a `${...}` value that does is not masked, since masking `60000` would
    /// mask ordinary text.
    secret: bool,
}

impl Reference {
    /// A value given literally but secret all the same (a catalog entry's secret
    /// parameter), shown as `written` wherever a message would quote it.
    pub(crate) fn literal(written: String, value: String) -> Self {
        Self {
            written,
            value,
            secret: true,
        }
    }

    /// The same reference, for a secret parameter: a credential whatever it looks like.
    pub(crate) fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// The same reference standing for `value` (the form a parameter took when it was
    /// inserted: percent-encoded in a URL path).
    pub(crate) fn standing_for(&self, value: String) -> Self {
        Self {
            written: self.written.clone(),
            value,
            secret: self.secret,
        }
    }

    /// Whether it is a credential whatever it looks like.
    pub(crate) fn is_secret(&self) -> bool {
        self.secret
    }

    /// The text the reference stood for: a credential, for the redactor only.
    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    /// `message` with this reference's text replaced by the reference as written.
    pub fn mask(&self, message: &str) -> String {
        if self.value.is_empty() {
            message.to_owned()
        } else {
            message.replace(&self.value, &self.written)
        }
    }
}

impl std::fmt::Debug for Reference {
    // The value may be a credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.written)
    }
}

/// Resolves every `${VAR}` / `${VAR:-default}` / `${file:/path}` in `input`; `$${` stands
/// for a literal `${`. A file's single trailing newline is dropped, since `echo token >
/// file` and most Secret tooling leave one that is not part of the credential.
pub(crate) fn substitute(input: &str, lookup: &Lookup<'_>) -> Result<Resolved, SubstituteError> {
    let mut references = Vec::new();
    if !input.contains("${") {
        return Ok(Resolved {
            text: input.to_owned(),
            references,
        });
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or(SubstituteError::Unterminated)?;
        let expr = &after[..end];
        let before = out.len();
        if let Some(path) = expr.strip_prefix("file:") {
            let text = (lookup.file)(Path::new(path)).map_err(|e| SubstituteError::File {
                path: path.to_owned(),
                reason: match e.kind() {
                    std::io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
                    _ => e.to_string(),
                },
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            out.push_str(text.strip_suffix('\r').unwrap_or(text));
        } else {
            let (var, default) = match expr.split_once(":-") {
                Some((var, default)) => (var, Some(default)),
                None => (expr, None),
            };
            match (lookup.var)(var).filter(|v| !(v.is_empty() && default.is_some())) {
                Some(value) => out.push_str(&value),
                None => match default {
                    Some(default) => out.push_str(default),
                    None => return Err(SubstituteError::Unset(var.to_owned())),
                },
            }
        }
        references.push(Reference {
            written: format!("${{{expr}}}"),
            value: out[before..].to_owned(),
            secret: false,
        });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Resolved {
        text: out,
        references,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        match var {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn file(path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/run/secrets/token") => Ok("from-file\n".into()),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "No such file or directory",
            )),
        }
    }

    fn substitute(input: &str) -> Result<String, SubstituteError> {
        let lookup = Lookup {
            var: &env,
            file: &file,
        };
        super::substitute(input, &lookup).map(|r| r.text)
    }

    #[test]
    fn files_are_read_without_their_trailing_newline() {
        assert_eq!(
            substitute("Bearer ${file:/run/secrets/token}"),
            Ok("Bearer from-file".into())
        );
        assert_eq!(
            substitute("${file:/nope}"),
            Err(SubstituteError::File {
                path: "/nope".into(),
                reason: "No such file or directory".into()
            })
        );
    }

    #[test]
    fn variables_defaults_and_escapes_resolve() {
        assert_eq!(substitute("plain"), Ok("plain".into()));
        assert_eq!(substitute("Bearer ${TOKEN}"), Ok("Bearer abc".into()));
        assert_eq!(substitute("${NOPE:-x}-${TOKEN}"), Ok("x-abc".into()));
        assert_eq!(substitute("${EMPTY:-fallback}"), Ok("fallback".into()));
        assert_eq!(substitute("${EMPTY}"), Ok(String::new()));
        assert_eq!(substitute("cost $${TOKEN}"), Ok("cost ${TOKEN}".into()));
    }

    #[test]
    fn unset_and_unterminated_are_errors() {
        assert_eq!(
            substitute("${NOPE}"),
            Err(SubstituteError::Unset("NOPE".into()))
        );
        assert_eq!(substitute("${TOKEN"), Err(SubstituteError::Unterminated));
    }
}
