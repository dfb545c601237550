//! One OpenMetrics exposition out of several: the supervisor's `/metrics` under
//! `connectors all` merges what each child serves.
//!
//! OpenMetrics wants each metric family once, its samples together, and one `# EOF`, so
//! the children's texts cannot simply be joined: their families are regrouped, each
//! family's metadata is kept once, and every sample of a child that does not name a
//! connector gets a `child` label, so no two children's series collide.

/// A metric family: its `# HELP`/`# TYPE`/`# UNIT` lines and its samples, in order.
#[derive(Default)]
struct Family {
    meta: Vec<String>,
    samples: Vec<String>,
}

/// Families in the order first seen.
#[derive(Default)]
pub(crate) struct Merged {
    families: Vec<(String, Family)>,
}

impl Merged {
    fn family(&mut self, name: &str) -> &mut Family {
        let at = match self.families.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                self.families.push((name.to_owned(), Family::default()));
                self.families.len() - 1
            }
        };
        &mut self.families[at].1
    }

    /// Adds the exposition `text` served by the child running `child`. Lines after
    /// `# EOF` and comments that are not metadata are ignored.
    pub(crate) fn add(&mut self, child: &str, text: &str) {
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line == "# EOF" {
                break;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut words = rest.splitn(3, ' ');
                if let (Some(kind @ ("HELP" | "TYPE" | "UNIT")), Some(name)) =
                    (words.next(), words.next())
                {
                    // The first child's metadata stands for every child's.
                    let family = self.family(name);
                    let prefix = format!("# {kind} {name}");
                    let same = |m: &String| m == &prefix || m.starts_with(&format!("{prefix} "));
                    if !family.meta.iter().any(same) {
                        family.meta.push(line.to_owned());
                    }
                    current = Some(name.to_owned());
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let family = match &current {
                Some(name) => name.clone(),
                None => sample_name(line).to_owned(),
            };
            let sample = labelled(line, child);
            self.family(&family).samples.push(sample);
        }
    }

    /// Adds a sample of the supervisor's own, `name{connector="<child>"} value`, to the
    /// gauge family `name`.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, child: &str, value: u8) {
        let family = self.family(name);
        if family.meta.is_empty() {
            family.meta.push(format!("# HELP {name} {help}"));
            family.meta.push(format!("# TYPE {name} gauge"));
        }
        family.samples.push(format!(
            "{name}{{connector=\"{}\"}} {value}",
            escaped(child)
        ));
    }

    /// The merged exposition, ending in `# EOF`.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (_, family) in &self.families {
            for line in family.meta.iter().chain(&family.samples) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// The metric name a sample line starts with.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// A label value as OpenMetrics writes it.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The sample `line` with `child="<child>"` added unless it names a connector already.
fn labelled(line: &str, child: &str) -> String {
    let name = sample_name(line);
    let rest = &line[name.len()..];
    let label = format!("child=\"{}\"", escaped(child));
    match rest.strip_prefix('{') {
        Some(inner) => {
            let Some(close) = closing_brace(inner) else {
                return line.to_owned();
            };
            let labels = &inner[..close];
            if label_names(labels).any(|n| n == "connector" || n == "child") {
                return line.to_owned();
            }
            let comma = if labels.is_empty() { "" } else { "," };
            format!("{name}{{{labels}{comma}{label}}}{}", &inner[close + 1..])
        }
        None => format!("{name}{{{label}}}{rest}"),
    }
}

/// The characters of `text` outside quoted label values (an escaped quote stays inside),
/// with their byte offsets: what both label readers below walk.
fn unquoted(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut quoted, mut escape) = (false, false);
    text.char_indices().filter(move |&(_, c)| {
        match c {
            _ if escape => escape = false,
            '\\' if quoted => escape = true,
            '"' => quoted = !quoted,
            _ => return !quoted,
        }
        false
    })
}

/// Where the label set opened before `inner` closes, outside quoted values.
fn closing_brace(inner: &str) -> Option<usize> {
    unquoted(inner).find(|&(_, c)| c == '}').map(|(i, _)| i)
}

/// The label names of a label set's text (`a="x",b="y"`).
fn label_names(labels: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    unquoted(labels).filter_map(move |(i, c)| match c {
        '=' => Some(labels[start..i].trim()),
        ',' => {
            start = i + 1;
            None
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_X: &str = "# HELP connector_polls Polls by outcome.\n\
        # TYPE connector_polls counter\n\
        connector_polls_total{connector=\"x\",outcome=\"success\"} 3\n\
        # HELP connector_config_reloads Config reloads by outcome.\n\
        # TYPE connector_config_reloads counter\n\
        connector_config_reloads_total{outcome=\"applied\"} 1\n\
        # EOF\n";
    const CHILD_Y: &str = "# HELP connector_polls Polls by outcome.\n\
        # TYPE connector_polls counter\n\
        connector_polls_total{connector=\"y\",outcome=\"success\"} 5\n\
        # HELP connector_config_reloads Config reloads by outcome.\n\
        # TYPE connector_config_reloads counter\n\
        connector_config_reloads_total{outcome=\"applied\"} 2\n\
        # EOF\n";

    #[test]
    fn families_are_regrouped_and_process_series_get_the_child() {
        let mut merged = Merged::default();
        merged.add("x", CHILD_X);
        merged.add("y", CHILD_Y);
        merged.gauge("connectors_child_up", "Children answering.", "x", 1);
        assert_eq!(
            merged.render(),
            "# HELP connector_polls Polls by outcome.\n\
             # TYPE connector_polls counter\n\
             connector_polls_total{connector=\"x\",outcome=\"success\"} 3\n\
             connector_polls_total{connector=\"y\",outcome=\"success\"} 5\n\
             # HELP connector_config_reloads Config reloads by outcome.\n\
             # TYPE connector_config_reloads counter\n\
             connector_config_reloads_total{outcome=\"applied\",child=\"x\"} 1\n\
             connector_config_reloads_total{outcome=\"applied\",child=\"y\"} 2\n\
             # HELP connectors_child_up Children answering.\n\
             # TYPE connectors_child_up gauge\n\
             connectors_child_up{connector=\"x\"} 1\n\
             # EOF\n"
        );
    }

    #[test]
    fn labels_are_read_outside_quoted_values() {
        assert_eq!(
            labelled(r#"m_total{a="connector=\"}",b="}"} 1"#, "c"),
            r#"m_total{a="connector=\"}",b="}",child="c"} 1"#
        );
        assert_eq!(labelled("up 1", "a\"b"), r#"up{child="a\"b"} 1"#);
        assert_eq!(labelled("m{} 2", "c"), r#"m{child="c"} 2"#);
        assert_eq!(
            labelled("m{connector=\"q\"} 2", "c"),
            "m{connector=\"q\"} 2"
        );
    }
}
