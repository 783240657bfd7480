//! `--format prometheus`: the Prometheus text exposition format (version 0.0.4), for a
//! scheduled sweep writing a node_exporter textfile-collector file
//! (`fleetauth sweep … --format prometheus > dir/fleetauth.prom.$$ && mv … dir/fleetauth.prom`).
//!
//! Three gauges, each with its `# HELP` and `# TYPE` lines and all its samples together:
//! - `fleetauth_ready{member,provider}`: 1 when the row is `ready`, else 0;
//! - `fleetauth_state{member,provider,state}`: one sample per possible state, 1 for the row's
//!   state and 0 for the others (the "state set" pattern: alerts select a state without the
//!   series changing labels when the state changes);
//! - `fleetauth_credential_expiry_seconds{member,provider}`: seconds from the check until the
//!   credential the CLI uses expires, negative once expired; only rows that know it
//!   (`expires_in` in JSON).
//!
//! Label values are escaped as the format requires (backslash, double quote, line feed); member
//! and provider names are the inventory's and the provider files', whatever they hold.

use super::Row;
use crate::row::State;

/// A label value as the text format requires: `\` → `\\`, `"` → `\"`, line feed → `\n`.
pub fn label_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn labels(r: &Row) -> String {
    format!(
        "member=\"{}\",provider=\"{}\"",
        label_value(&r.member),
        label_value(&r.provider)
    )
}

fn family(out: &mut String, name: &str, help: &str, samples: impl IntoIterator<Item = String>) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for s in samples {
        out.push_str(name);
        out.push_str(&s);
        out.push('\n');
    }
}

/// The exposition of `rows`.
pub fn to_prometheus(rows: &[Row]) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "fleetauth_ready",
        "Whether the member's CLI for the provider is ready (1) or not (0).",
        rows.iter()
            .map(|r| format!("{{{}}} {}", labels(r), u8::from(r.state == State::Ready))),
    );
    family(
        &mut out,
        "fleetauth_state",
        "The state of the member's CLI for the provider: 1 for its state, 0 for the others.",
        rows.iter().flat_map(|r| {
            State::ALL.iter().map(move |s| {
                format!(
                    "{{{},state=\"{}\"}} {}",
                    labels(r),
                    s.as_str(),
                    u8::from(r.state == *s)
                )
            })
        }),
    );
    family(
        &mut out,
        "fleetauth_credential_expiry_seconds",
        "Seconds until the credential the CLI uses expires (negative: expired), where known.",
        rows.iter()
            .filter_map(|r| r.expires_in.map(|secs| format!("{{{}}} {secs}", labels(r)))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::row;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        let mut r = row("we\"ird\\\nname", State::NeedsAuth);
        r.expires_in = Some(-5);
        let text = to_prometheus(&[r]);
        assert!(
            text.contains(
                "fleetauth_ready{member=\"we\\\"ird\\\\\\nname\",provider=\"gemini\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "fleetauth_credential_expiry_seconds{member=\"we\\\"ird\\\\\\nname\",provider=\"gemini\"} -5\n"
        ));
        // One line per sample: the member's newline did not break a line.
        assert_eq!(
            text.lines().count(),
            3 * 2 + 1 + State::ALL.len() + 1,
            "{text}"
        );
    }

    #[test]
    fn one_state_sample_is_one_per_row() {
        let rows = [row("a", State::Ready), row("b", State::Error)];
        let text = to_prometheus(&rows);
        let ones: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("fleetauth_state{") && l.ends_with(" 1"))
            .collect();
        assert_eq!(ones.len(), 2, "{text}");
        assert!(ones[0].contains("member=\"a\"") && ones[0].contains("state=\"ready\""));
        assert!(ones[1].contains("member=\"b\"") && ones[1].contains("state=\"error\""));
        assert!(text.contains("fleetauth_ready{member=\"a\",provider=\"gemini\"} 1\n"));
        // No row knows an expiry: the family is declared, with no sample.
        assert!(text.ends_with("# TYPE fleetauth_credential_expiry_seconds gauge\n"));
    }
}
