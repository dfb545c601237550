//! `${VAR}` and `${VAR:-default}` in provider settings, resolved once at load.
//!
//! Credentials belong in the environment (or a Kubernetes Secret mounted into it), not in
//! `connectors.json`; substitution lets the file name them without holding them.

/// Why a string could not be resolved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubstituteError {
    /// `${VAR}` with `VAR` unset and no default.
    Unset(String),
    /// `${` without its `}`.
    Unterminated,
}

/// Resolves every `${VAR}` / `${VAR:-default}` in `input`; `$${` stands for a literal `${`.
pub(crate) fn substitute(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstituteError> {
    if !input.contains("${") {
        return Ok(input.to_owned());
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
        let (var, default) = match expr.split_once(":-") {
            Some((var, default)) => (var, Some(default)),
            None => (expr, None),
        };
        match lookup(var).filter(|v| !(v.is_empty() && default.is_some())) {
            Some(value) => out.push_str(&value),
            None => match default {
                Some(default) => out.push_str(default),
                None => return Err(SubstituteError::Unset(var.to_owned())),
            },
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

    #[test]
    fn variables_defaults_and_escapes_resolve() {
        assert_eq!(substitute("plain", &env), Ok("plain".into()));
        assert_eq!(substitute("Bearer ${TOKEN}", &env), Ok("Bearer abc".into()));
        assert_eq!(substitute("${NOPE:-x}-${TOKEN}", &env), Ok("x-abc".into()));
        assert_eq!(
            substitute("${EMPTY:-fallback}", &env),
            Ok("fallback".into())
        );
        assert_eq!(substitute("${EMPTY}", &env), Ok(String::new()));
        assert_eq!(
            substitute("cost $${TOKEN}", &env),
            Ok("cost ${TOKEN}".into())
        );
    }

    #[test]
    fn unset_and_unterminated_are_errors() {
        assert_eq!(
            substitute("${NOPE}", &env),
            Err(SubstituteError::Unset("NOPE".into()))
        );
        assert_eq!(
            substitute("${TOKEN", &env),
            Err(SubstituteError::Unterminated)
        );
    }
}
