//! `fleetauth report merge FILE…`: one document, summary and exit status from the results of
//! several runs — the N jobs of a CI matrix that each swept one `--shard`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::formats::RowReport;
use super::{Cli, Failure, FleetFormat, use_color};
use crate::report;

pub fn run(cli: &Cli, files: &[PathBuf], format: FleetFormat) -> Result<i32, Failure> {
    let mut rows = Vec::new();
    // member × provider → the file it came from: shards never overlap, so a repeat means the
    // same shard (or the whole fleet) was given twice and the counts would lie.
    let mut seen: BTreeMap<(String, String), &PathBuf> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Failure::usage(format!("error: {}: {e}", file.display())))?;
        let got = report::read_results(&text)
            .map_err(|e| Failure::usage(format!("error: {}: {e}", file.display())))?;
        for r in got {
            let key = (r.member.clone(), r.provider.clone());
            if let Some(first) = seen.insert(key, file) {
                return Err(Failure::usage(format!(
                    "error: {} and {} both report member {} × {}: were the same shard's results given twice?",
                    first.display(),
                    file.display(),
                    report::printable(&r.member),
                    report::printable(&r.provider)
                )));
            }
            rows.push(r);
        }
    }
    RowReport::new(format, use_color(cli.color), "report merge").finish(&rows);
    Ok(report::exit_code(&rows))
}
