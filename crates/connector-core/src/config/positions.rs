//! Line and column of any node of the config file, by field path.
//!
//! serde_json's values carry no positions, so the file is parsed a second time into an
//! AST (jsonc-parser) when the first error needs a line number, and never otherwise.

use std::collections::HashMap;

use jsonc_parser::common::Ranged;

use super::errors::PathSegment;

/// Byte offsets of every node of the file by path.
pub(crate) struct Positions(HashMap<Vec<PathSegment>, usize>);

impl Positions {
    pub(crate) fn new(text: &str) -> Option<Self> {
        let parsed =
            jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default()).ok()?;
        let mut map = HashMap::new();
        if let Some(root) = &parsed.value {
            collect(root, &mut Vec::new(), root.range().start, &mut map);
        }
        Some(Self(map))
    }

    /// Line and column of the deepest existing node on `path` (a missing field points at
    /// the object that should hold it).
    pub(crate) fn locate(&self, text: &str, path: &[PathSegment]) -> (usize, usize) {
        let offset = (0..=path.len())
            .rev()
            .find_map(|n| self.0.get(&path[..n]).copied())
            .unwrap_or(0);
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit_once('\n')
            .map_or(before, |(_, l)| l)
            .chars()
            .count()
            + 1;
        (line, column)
    }
}

fn collect(
    node: &jsonc_parser::ast::Value<'_>,
    path: &mut Vec<PathSegment>,
    start: usize,
    out: &mut HashMap<Vec<PathSegment>, usize>,
) {
    use jsonc_parser::ast::Value as Ast;
    out.insert(path.clone(), start);
    match node {
        Ast::Object(obj) => {
            for prop in &obj.properties {
                path.push(PathSegment::Key(prop.name.as_str().to_owned()));
                collect(&prop.value, path, prop.range.start, out);
                path.pop();
            }
        }
        Ast::Array(arr) => {
            for (i, el) in arr.elements.iter().enumerate() {
                path.push(PathSegment::Index(i));
                collect(el, path, el.range().start, out);
                path.pop();
            }
        }
        _ => {}
    }
}
