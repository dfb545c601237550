//! Checks every provider's config needs the same way: an API's base URL, text that ends
//! up in a header, and comma lists of values the API spells one way.

use url::Url;

use super::FieldError;

/// A number's default, for `#[serde(default = "fields::default_u32::<N>")]`: one function
/// for every such default instead of one per field.
pub fn default_u32<const N: u32>() -> u32 {
    N
}

/// `message` at `path` when `wrong`: one line per rule in a provider's `check`, gathered
/// with the others (`[...].into_iter().flatten().collect()`).
pub fn error_if(wrong: bool, path: &[&str], message: impl Into<String>) -> Option<FieldError> {
    wrong.then(|| FieldError::new(path, message))
}

/// An API root: http or https, and nothing a request would carry by accident (no
/// credentials in it, no query, no fragment).
pub fn base_url(field: &str, url: &Url) -> Option<FieldError> {
    let clean = matches!(url.scheme(), "http" | "https")
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (!clean).then(|| {
        FieldError::new(
            &[field],
            "expected an http or https URL without credentials, query or fragment",
        )
    })
}

/// Text sent in a header: printable ASCII and spaces only.
pub fn header_text(field: &str, value: Option<&str>) -> Option<FieldError> {
    let bad = value.is_some_and(|v| !v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()));
    bad.then(|| {
        FieldError::new(
            &[field],
            "may hold only printable ASCII characters (it is sent in a header)",
        )
    })
}

/// The items of a comma list, trimmed, empty ones left out.
pub fn comma_list(list: Option<&str>) -> Vec<&str> {
    list.map(|l| {
        l.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// A comma list in the API's spelling of each value (matched without regard to case), or
/// an error naming the first unknown value and listing the known ones.
pub fn known_values(
    field: &str,
    list: Option<&str>,
    known: &[&str],
) -> Result<Option<String>, FieldError> {
    let mut out = Vec::new();
    for v in comma_list(list) {
        match known.iter().find(|k| k.eq_ignore_ascii_case(v)) {
            Some(k) => out.push(*k),
            None => {
                return Err(FieldError::new(
                    &[field],
                    format!(
                        "unknown {field} \"{v}\"; expected a comma list of {}",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok((!out.is_empty()).then(|| out.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_headers_and_lists_are_checked() {
        let ok = Url::parse("https://api.example/v1").expect("url");
        assert!(base_url("baseUrl", &ok).is_none());
        for bad in [
            "ftp://h/",
            "https://u:p@h/",
            "https://h/?q=1",
            "https://h/#f",
        ] {
            let url = Url::parse(bad).expect("url");
            assert!(base_url("baseUrl", &url).is_some(), "{bad}");
        }
        assert!(header_text("contact", Some("me@example.org")).is_none());
        assert!(header_text("contact", Some("a\r\nX-Evil: 1")).is_some());
        let known = ["Extreme", "Severe"];
        assert_eq!(
            known_values("severity", Some(" severe, EXTREME,"), &known)
                .ok()
                .flatten()
                .as_deref(),
            Some("Severe,Extreme")
        );
        let err = known_values("severity", Some("Severe,odd"), &known).expect_err("unknown");
        assert!(err.message.contains("\"odd\""), "{err:?}");
    }
}
