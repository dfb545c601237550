//! `catalog`: the ready sources this binary's `HTTP_JSON` expands, listed, shown one by
//! one, or as the catalog page.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use connector_core::Factories;
use connector_core::spec::catalog::Catalog;

use crate::cli::CatalogAction;

/// Runs `catalog [show NAME] [--markdown]`.
pub(super) fn run(
    factories: &Factories,
    action: Option<&CatalogAction>,
    markdown: bool,
) -> Result<ExitCode> {
    let Some(catalog) = factories.catalog() else {
        eprintln!(
            "this binary has no catalog: catalog entries run as HTTP_JSON connectors, in connector-http or the universal connectors binary"
        );
        return Ok(ExitCode::FAILURE);
    };
    let text = match (action, markdown) {
        (Some(CatalogAction::Show { name }), _) => match catalog.find(name) {
            Ok(entry) => serde_json::to_string_pretty(entry)? + "\n",
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        },
        (None, true) => catalog.markdown(),
        (None, false) => lines(catalog),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// One line per entry (newest version), beginning with its name; columns aligned.
fn lines(catalog: &Catalog) -> String {
    let rows: Vec<[String; 4]> = catalog
        .latest()
        .iter()
        .map(|e| {
            [
                e.pinned(),
                format!("publishes {}", e.publishes),
                format!("auth: {}", e.auth),
                format!("needs: {}", e.required()),
            ]
        })
        .collect();
    let widths = crate::commands::column_widths(&rows);
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}
