//! Scrubbing every secret value the process sends from everything it prints.
//!
//! Typed secrets print as `****` by themselves, but an API can echo a credential back (a
//! 401 body quoting the `Authorization` header, an error naming the `api_key` it got),
//! and that text reaches error messages, logs and CLI output. A [`Redactor`] knows every
//! value the process sends as a credential (typed secrets, values substituted from
//! `${VAR}`, derived forms such as a Basic pair's base64, tokens fetched at run time) and
//! replaces each occurrence, in every encoding a server may echo it in, by `****`.
//!
//! It is cheap to clone (one shared set) and cheap to run: one Aho-Corasick pass over the
//! text, which is far below the cost of formatting a log line.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;
use base64::Engine as _;

/// What a scrubbed value is replaced with.
pub const MASK: &str = "****";

/// Secrets shorter than this are warned about at load: masking a short value masks every
/// innocent occurrence of it too.
pub const MIN_SECRET_LEN: usize = 8;

/// Values that are never registered: too short to mean anything, they would mask ordinary
/// text (a one-letter password is still a mistake the load warns about).
const NEVER_BELOW: usize = 4;

/// The set of secret values and the automaton that finds them.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Default)]
struct Inner {
    values: BTreeSet<String>,
    finder: Option<AhoCorasick>,
}

impl Inner {
    /// The automaton over every form, longest first so a secret containing another is
    /// masked whole; none when nothing is registered.
    fn rebuild(&mut self) {
        let mut patterns: Vec<&String> = self.values.iter().collect();
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        self.finder = (!patterns.is_empty())
            .then(|| {
                AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                    .build(patterns)
                    .ok()
            })
            .flatten();
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are the secrets: only how many.
        write!(f, "Redactor({} forms)", self.read().values.len())
    }
}

impl PartialEq for Redactor {
    /// Every redactor is as good as another for comparing configs.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Redactor {
    /// An empty redactor.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `secret` in every form a server may echo it in: as sent, percent-encoded
    /// (`%20` and `+` for spaces), JSON-escaped, and base64 (standard and URL-safe, with
    /// and without padding).
    pub fn add(&self, secret: &str) {
        self.add_all([secret]);
    }

    /// [`Redactor::add`] for several values, rebuilding the automaton once; true when any
    /// of them was new.
    pub fn add_all<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) -> bool {
        let forms: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= NEVER_BELOW)
            .flat_map(forms_of)
            .collect();
        let mut inner = self.write();
        let before = inner.values.len();
        inner.values.extend(forms);
        let added = inner.values.len() != before;
        if added {
            inner.rebuild();
        }
        added
    }

    /// Replaces a credential that rotates (an OAuth2 access token): `old`'s forms go, so a
    /// long-running process does not collect every token it ever fetched.
    pub fn replace(&self, old: Option<&str>, new: &str) {
        let mut inner = self.write();
        if let Some(old) = old.filter(|o| *o != new) {
            for form in forms_of(old) {
                inner.values.remove(&form);
            }
        }
        if new.len() >= NEVER_BELOW {
            inner.values.extend(forms_of(new));
        }
        inner.rebuild();
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `text` with every registered form replaced by [`MASK`].
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let inner = self.read();
        let Some(finder) = &inner.finder else {
            return Cow::Borrowed(text);
        };
        if !finder.is_match(text) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        finder.replace_all_with(text, &mut out, |_, _, dst| {
            dst.push_str(MASK);
            true
        });
        Cow::Owned(out)
    }

    /// Scrubs bytes that may not be UTF-8 (an error body), lossily.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> String {
        self.scrub(&String::from_utf8_lossy(bytes)).into_owned()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.read().values.is_empty()
    }
}

/// Every encoding of `secret` a server may echo.
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let percent: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let spaces = percent.replace('+', "%20");
    // Servers echo percent-encodings with lowercase hex digits too (`%2f`).
    forms.extend([lower_hex(&percent), lower_hex(&spaces)]);
    forms.push(percent);
    forms.push(spaces);
    if let Ok(json) = serde_json::to_string(secret) {
        let escaped = &json[1..json.len() - 1];
        // PHP and others escape `/` in JSON strings.
        forms.push(escaped.replace('/', "\\/"));
        forms.push(escaped.to_owned());
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    for engine in engines {
        forms.push(engine.encode(secret));
    }
    forms.retain(|f| f.len() >= NEVER_BELOW);
    forms
}

/// `text` with the hex digits of its `%XX` escapes in lowercase.
fn lower_hex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// The base64 a Basic `Authorization` header carries for `user:password`: a derived form
/// of the password that no single-value encoding matches.
pub fn basic_pair(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// A URL as it may appear in logs and errors: no query, no user info.
pub fn display_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_of_a_secret_is_masked() {
        let r = Redactor::new();
        r.add("s3cr3t/t0ken+x y");
        for echoed in [
            "bad token s3cr3t/t0ken+x y here",
            "q=s3cr3t%2Ft0ken%2Bx+y&",
            "q=s3cr3t%2Ft0ken%2Bx%20y&",
            "q=s3cr3t%2ft0ken%2bx+y&",
            "{\"t\":\"s3cr3t\\/t0ken+x y\"}",
            "{\"t\":\"s3cr3t/t0ken+x y\"}",
            "czNjcjN0L3Qwa2VuK3ggeQ==",
        ] {
            let shown = r.scrub(echoed);
            assert!(shown.contains(MASK), "{echoed} -> {shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(!shown.contains("czNjcjN0"), "{shown}");
        }
        assert_eq!(r.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn json_escapes_are_matched() {
        let r = Redactor::new();
        r.add("pa\"ss\\word");
        assert_eq!(r.scrub(r#"{"p":"pa\"ss\\word"}"#), r#"{"p":"****"}"#);
    }

    #[test]
    fn a_basic_pair_is_masked_as_sent() {
        let r = Redactor::new();
        let pair = basic_pair("me@example.com", "api-token-123");
        r.add(&pair);
        let header = format!("authorization=Basic {pair}");
        assert_eq!(r.scrub(&header), "authorization=Basic ****");
    }

    #[test]
    fn tiny_values_are_not_registered() {
        let r = Redactor::new();
        r.add("a");
        assert!(r.is_empty());
        assert_eq!(r.scrub("a cat"), "a cat");
    }

    #[test]
    fn the_longer_of_two_overlapping_secrets_is_masked_whole() {
        let r = Redactor::new();
        r.add_all(["token-abc", "token-abcdef"]);
        assert_eq!(r.scrub("x token-abcdef y"), "x **** y");
    }
}
