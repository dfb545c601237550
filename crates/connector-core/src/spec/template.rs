//! Placeholders, and nothing more: `{{cursor}}`, `{{now}}` and `{{parent:/pointer}}` in
//! requests, `{{/pointer}}` in signal templates. No loops, no expressions, so a config cannot run code.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text as written.
    Text(String),
    /// The incremental cursor's value for this poll.
    Cursor,
    /// The time of the poll's first request.
    Now,
    /// A record's value at this JSON pointer.
    Pointer(String),
    /// The parent record's value at this JSON pointer (a parent/child read's child
    /// request).
    Parent(String),
}

/// Where a template is used, which says which placeholders it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A request: `{{cursor}}`, `{{now}}`, `{{parent:/pointer}}`.
    Request,
    /// A signal field: `{{/pointer}}`.
    Record,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

/// Whether `pointer` is an RFC 6901 JSON pointer (`""`, or `/` then tokens in which `~`
/// is only ever `~0` or `~1`).
pub fn is_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    pointer.starts_with('/')
        && pointer
            .split('~')
            .skip(1)
            .all(|rest| rest.starts_with('0') || rest.starts_with('1'))
}

/// The URL template `text` as a URL, with a sample value (`x`) in each `{{cursor}}`,
/// `{{now}}` and `{{parent:…}}`: enough to check it and to know its origin.
pub fn sample_url(text: &str) -> Result<url::Url, url::ParseError> {
    let sampled = text.replace("{{cursor}}", "x").replace("{{now}}", "x");
    url::Url::parse(&without_parents(&sampled))
}

/// `text` with each `{{parent:…}}` replaced by `x`.
fn without_parents(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{parent:") {
        out.push_str(&rest[..at]);
        match rest[at..].find("}}") {
            Some(end) => {
                out.push('x');
                rest = &rest[at + end + 2..];
            }
            None => {
                rest = &rest[at..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether every `{{parent:…}}` in a URL template comes after the host (in the path or
/// the query), so no parent record can choose where the credentials go.
pub fn parents_after_host(url: &str) -> bool {
    let Some(first) = url.find("{{parent:") else {
        return true;
    };
    let head = &url[..first];
    head.split_once("://")
        .is_some_and(|(_, authority_on)| authority_on.contains('/'))
}

impl Template {
    /// Parses `text`; an unknown placeholder, one not allowed in `context`, an unclosed
    /// `{{` or a malformed pointer is an error saying which.
    pub fn parse(text: &str, context: Context) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("\"{{{{\" without \"}}}}\" in {text:?}"))?;
            // `{{ cursor | string }}` reads as `{{cursor|string}}`.
            let name: String = after[..close]
                .split('|')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("|");
            let part = match (name.as_str(), context) {
                // `|string` keeps a whole-value placeholder in a JSON body a string when the
                // time format is a number (see `fill_body`).
                ("cursor" | "cursor|string", Context::Request) => Part::Cursor,
                ("now" | "now|string", Context::Request) => Part::Now,
                (p, Context::Request) if p.starts_with("parent:") => {
                    let pointer = &p["parent:".len()..];
                    if !pointer.starts_with('/') || !is_pointer(pointer) {
                        return Err(format!(
                            "{{{{{p}}}}}: expected a JSON pointer into the parent record, such as {{{{parent:/id}}}}"
                        ));
                    }
                    Part::Parent(pointer.to_owned())
                }
                (p, Context::Record) if p.starts_with('/') => {
                    if !is_pointer(p) {
                        return Err(format!("{{{{{p}}}}} is not a JSON pointer (RFC 6901)"));
                    }
                    Part::Pointer(p.to_owned())
                }
                (other, Context::Request) => {
                    return Err(format!(
                        "unknown placeholder {{{{{other}}}}}; a request may hold {{{{cursor}}}}, {{{{now}}}} and {{{{parent:/pointer}}}}"
                    ));
                }
                (other, Context::Record) => {
                    return Err(format!(
                        "unknown placeholder {{{{{other}}}}}; a signal template may hold record pointers such as {{{{/title}}}}"
                    ));
                }
            };
            parts.push(part);
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// The pieces.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// True when the whole value is one placeholder (it is left out while it has no value).
    pub fn is_one_placeholder(&self) -> bool {
        matches!(self.parts.as_slice(), [p] if !matches!(p, Part::Text(_)))
    }

    /// True when it holds `{{cursor}}`.
    pub fn uses_cursor(&self) -> bool {
        self.parts.contains(&Part::Cursor)
    }

    /// The parent pointers it uses (`{{parent:/id}}` gives `/id`).
    pub fn parent_pointers(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Parent(p) => Some(p.as_str()),
            _ => None,
        })
    }

    /// True when it holds any placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Text(_)))
    }

    /// The text, each placeholder replaced by `value` of it; `None` when one has none.
    pub fn render(&self, value: impl Fn(&Part) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                other => out.push_str(&value(other)?),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_parsed_and_checked() {
        let t = Template::parse("updated >= \"{{cursor}}\"", Context::Request).expect("ok");
        assert!(t.uses_cursor() && !t.is_one_placeholder());
        assert!(
            Template::parse("{{ cursor }}", Context::Request)
                .expect("ok")
                .is_one_placeholder()
        );
        assert_eq!(
            Template::parse("{{env}}", Context::Request).expect_err("unknown"),
            "unknown placeholder {{env}}; a request may hold {{cursor}}, {{now}} and {{parent:/pointer}}"
        );
        assert_eq!(
            Template::parse("{{/a~2}}", Context::Record).expect_err("pointer"),
            "{{/a~2}} is not a JSON pointer (RFC 6901)"
        );
        assert!(Template::parse("{{cursor", Context::Request).is_err());
        let t = Template::parse("{{/key}}: {{/fields/summary}}", Context::Record).expect("ok");
        let shown = t.render(|p| match p {
            Part::Pointer(p) => Some(p.to_uppercase()),
            _ => None,
        });
        assert_eq!(shown.as_deref(), Some("/KEY: /FIELDS/SUMMARY"));
    }
}
