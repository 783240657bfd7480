//! The output formats of `sweep`, `provision` and `run` against real sshd members, each read
//! back with a standard parser or the format's own rules: JSON lines line by line while a slow
//! member is still running, JUnit XML with an XML parser and the attributes its schema requires,
//! the Prometheus text format with a checker of its rules, plain columns and TSV.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Lab, State};

/// A ready member answers at once; the slow one's deep prompt hangs until its 6 s deadline.
/// Its row must not hold back the fast member's line: that line is read while fleetauth runs.
#[test]
fn jsonl_writes_each_member_as_it_finishes_then_a_summary() {
    let lab = Lab::new();
    lab.member("fast").provider("gemini", State::EnvKey).start();
    lab.member("slow")
        .provider("gemini", State::VendorUnreachable)
        .inventory_line("probe_timeout = \"6s\"")
        .start();
    let inv = lab.inventory("");
    let mut child = lab
        .run(&[
            "sweep",
            "-i",
            inv.to_str().unwrap(),
            "--deep",
            "--format",
            "jsonl",
        ])
        .timeout(Duration::from_secs(60))
        .spawn_reading_stdout();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first_at = Instant::now();
    let still_running = child.try_wait().unwrap().is_none();
    let first: Value = serde_json::from_str(&first).expect("the first line is one JSON object");
    assert_eq!(first["member"], "fast", "{first}");
    assert_eq!(first["state"], "ready");
    assert!(
        still_running,
        "the fast member's line came only when fleetauth had ended"
    );
    let rest: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("each line is one JSON object"))
        .collect();
    let status = child.wait().unwrap();
    assert!(
        first_at.elapsed() > Duration::from_secs(2),
        "the slow member's prompt should have taken its deadline after the fast line"
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert_eq!(rest[0]["member"], "slow");
    assert_eq!(rest[0]["state"], "error");
    // The same fields as the JSON document's rows, and its summary as the last line.
    for key in ["host", "provider", "source", "version", "detail"] {
        assert!(first.get(key).is_some(), "row line lacks {key}: {first}");
    }
    let summary = &rest[1]["summary"];
    assert_eq!(rest[1].as_object().unwrap().len(), 1, "{}", rest[1]);
    assert_eq!(
        (
            &summary["members"],
            &summary["rows"],
            &summary["ready"],
            &summary["error"]
        ),
        (
            &Value::from(2),
            &Value::from(2),
            &Value::from(1),
            &Value::from(1)
        )
    );
}

/// A member with nothing to install is written once probed, one that gets a key once its
/// install is verified (or, with --check, planned); the lines are the JSON document's rows.
#[test]
fn provision_jsonl_rows_match_its_json_document() {
    let lab = Lab::new();
    lab.member("a").provider("gemini", State::EnvKey).start();
    lab.member("b").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let key = support::fake::gemini_key();
    let provision = |format: &str, check: bool| {
        let mut args = vec!["provision", "-i", inv.to_str().unwrap(), "--no-input"];
        args.extend(["--format", format]);
        if check {
            args.push("--check");
        }
        lab.run(&args).env("GEMINI_API_KEY", &key).output()
    };
    let objects = |out: &support::Output| -> Vec<Value> {
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    };
    let doc = provision("json", true);
    let lines = provision("jsonl", true);
    lines.assert_exit(doc.code.unwrap());
    let all = objects(&lines);
    let (summary, rows) = all.split_last().unwrap();
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r["member"].as_str().unwrap().to_string());
    assert_eq!(Value::from(rows), doc.json()["results"], "{lines}");
    assert_eq!(summary["summary"], doc.json()["summary"]);
    assert_eq!(doc.row("a", "gemini")["action"], "none");
    assert_eq!(doc.row("b", "gemini")["action"], "would_push");

    let pushed = provision("jsonl", false);
    pushed.assert_exit(0);
    let all = objects(&pushed);
    assert_eq!(all.len(), 3, "{pushed}");
    // a needed nothing: written after its probe, before b's install was done.
    assert_eq!(
        (&all[0]["member"], &all[0]["action"]),
        (&Value::from("a"), &Value::from("none"))
    );
    assert_eq!(
        (&all[1]["member"], &all[1]["action"]),
        (&Value::from("b"), &Value::from("pushed"))
    );
    assert_eq!(all[1]["state"], "ready");
    assert_eq!(all[2]["summary"]["ready"], 2);
    pushed.assert_no_secret(&key);
}

#[test]
fn junit_has_one_case_per_member_and_provider_and_the_schema_attributes() {
    let lab = Lab::new();
    lab.member("ok")
        .provider("gemini", State::EnvKey)
        .provider("claude", State::NoAuth)
        .start();
    lab.member("bare")
        .provider("gemini", State::NotInstalled)
        .start();
    lab.down_member("dead");
    let inv = lab.inventory("providers = [\"gemini\"]");
    let out = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "junit"]);
    out.assert_exit(1);
    let doc = roxmltree::Document::parse(&out.stdout).expect("well-formed XML");
    let suite = doc.root_element();
    assert_eq!(suite.tag_name().name(), "testsuite");
    for attr in [
        "name",
        "tests",
        "failures",
        "errors",
        "skipped",
        "time",
        "timestamp",
        "hostname",
    ] {
        assert!(suite.attribute(attr).is_some(), "testsuite lacks {attr}");
    }
    assert_eq!(suite.attribute("name"), Some("fleetauth sweep"));
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("2"));
    assert_eq!(suite.attribute("errors"), Some("1"));
    assert!(suite.attribute("time").unwrap().parse::<f64>().unwrap() > 0.0);
    let children: BTreeSet<&str> = suite
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        children,
        BTreeSet::from(["properties", "testcase", "system-out", "system-err"])
    );
    let mut cases = BTreeMap::new();
    for case in suite.children().filter(|n| n.has_tag_name("testcase")) {
        for attr in ["classname", "name", "time"] {
            assert!(case.attribute(attr).is_some(), "testcase lacks {attr}");
        }
        let problem = case.children().find(|n| n.is_element()).map(|p| {
            assert!(p.attribute("type").is_some() && p.attribute("message").is_some());
            (
                p.tag_name().name().to_string(),
                p.attribute("type").unwrap().to_string(),
            )
        });
        cases.insert(
            (
                case.attribute("classname").unwrap().to_string(),
                case.attribute("name").unwrap().to_string(),
            ),
            problem,
        );
    }
    let key = |m: &str, p: &str| (m.to_string(), p.to_string());
    let fails = |element: &str, state: &str| Some((element.to_string(), state.to_string()));
    assert_eq!(
        cases,
        BTreeMap::from([
            (key("ok", "gemini"), None),
            (key("ok", "claude"), fails("failure", "needs_auth")),
            (key("bare", "gemini"), fails("failure", "not_installed")),
            (key("dead", "gemini"), fails("error", "unreachable")),
        ])
    );
}

/// One sample of an exposition: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The Prometheus text format's rules (exposition format 0.0.4), as a reader applies them:
/// `# HELP` / `# TYPE` lines before their family's samples, one TYPE per family, a family's
/// samples together, valid metric and label names, label values with only `\\`, `\"` and `\n`
/// escapes, float values, no series twice, a final newline.
fn check_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let name_ok = |n: &str, colon: bool| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    };
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut typed = BTreeMap::new();
    let mut done_families = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            if !name_ok(name, true) {
                return Err(format!("bad metric name in {line:?}"));
            }
            if kw == "TYPE" {
                let t = parts.next().unwrap_or("");
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                    return Err(format!("bad type in {line:?}"));
                }
                if typed.insert(name.to_string(), t.to_string()).is_some() {
                    return Err(format!("second TYPE for {name}"));
                }
            }
            if current.as_deref() != Some(name) {
                if let Some(previous) = current.replace(name.to_string()) {
                    done_families.insert(previous);
                }
                if done_families.contains(name) {
                    return Err(format!("family {name} split"));
                }
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("no value in {line:?}"))?;
        let name = &line[..name_end];
        if !name_ok(name, true) {
            return Err(format!("bad metric name in {line:?}"));
        }
        if current.as_deref() != Some(name) || !typed.contains_key(name) {
            return Err(format!(
                "sample of {name} outside its family, or before its TYPE"
            ));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut end = None;
            while let Some((start, c)) = chars.next() {
                if c == '}' {
                    end = Some(start + 1);
                    break;
                }
                if c == ',' {
                    continue;
                }
                let eq = inner[start..].find('=').ok_or("label without =")? + start;
                let label = &inner[start..eq];
                if !name_ok(label, false) {
                    return Err(format!("bad label name {label:?}"));
                }
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("label value not quoted in {line:?}"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(format!("bad escape \\{other:?} in {line:?}")),
                        },
                        Some('\n') | None => return Err(format!("unterminated value in {line:?}")),
                        Some(c) => value.push(c),
                    }
                }
                if labels.insert(label.to_string(), value).is_some() {
                    return Err(format!("label {label} twice in {line:?}"));
                }
            }
            let end = end.ok_or(format!("unclosed labels in {line:?}"))?;
            rest = &inner[end..];
        }
        let value = rest
            .strip_prefix(' ')
            .ok_or(format!("no space before the value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        if !series.insert((name.to_string(), labels.clone())) {
            return Err(format!("series twice: {line:?}"));
        }
        samples.push((name.to_string(), labels, value));
    }
    Ok(samples)
}

#[test]
fn the_exposition_checker_can_fail() {
    let ok = "# HELP m x\n# TYPE m gauge\nm{a=\"q\\\"\\\\\\n\"} 1\n";
    assert_eq!(check_exposition(ok).unwrap()[0].1["a"], "q\"\\\n");
    for bad in [
        "# TYPE m gauge\nm{a=\"q\"\"} 1\n",
        "# TYPE m gauge\nm{a=\"\\t\"} 1\n",
        "m 1\n",
        "# TYPE m gauge\nm 1\nm 1\n",
        "# TYPE m gauge\nm{1a=\"x\"} 1\n",
        "# TYPE m gauge\nm one\n",
        "# TYPE m gauge\n# TYPE n gauge\nn 1\n# TYPE m gauge\nm 1\n",
    ] {
        assert!(check_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn prometheus_exposition_follows_the_text_format_and_knows_expiries() {
    let lab = Lab::new();
    lab.member("a")
        .provider("gemini", State::OauthValid)
        .start();
    lab.member("b")
        .provider("gemini", State::NoAuth)
        .provider("claude", State::OauthExpiring)
        .start();
    let inv = lab.inventory("");
    let out = lab.fleetauth(&[
        "sweep",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "prometheus",
    ]);
    out.assert_exit(1);
    let samples = check_exposition(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"));
    let value = |name: &str, member: &str, provider: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l["member"] == member && l["provider"] == provider)
            .map(|s| s.2)
    };
    assert_eq!(value("fleetauth_ready", "a", "gemini"), Some(1.0));
    assert_eq!(value("fleetauth_ready", "b", "gemini"), Some(0.0));
    assert_eq!(value("fleetauth_ready", "b", "claude"), Some(1.0));
    let valid = value("fleetauth_credential_expiry_seconds", "a", "gemini").unwrap();
    assert!(valid > 3600.0, "a login valid for hours: {valid}");
    let expiring = value("fleetauth_credential_expiry_seconds", "b", "claude").unwrap();
    assert!(expiring > 0.0 && expiring <= 3600.0, "{expiring}");
    assert_eq!(
        value("fleetauth_credential_expiry_seconds", "b", "gemini"),
        None
    );
    let states: Vec<&Sample> = samples
        .iter()
        .filter(|(n, l, v)| n == "fleetauth_state" && l["member"] == "b" && *v == 1.0)
        .collect();
    assert_eq!(states.len(), 2, "one state per row");
    // JSON tells the same expiry.
    let json = lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"]);
    let secs = json.row("b", "claude")["expires_in"].as_i64().unwrap();
    assert!(
        (secs as f64 - expiring).abs() < 120.0,
        "{secs} vs {expiring}"
    );
    assert!(json.row("b", "gemini").get("expires_in").is_none());
}

#[test]
fn piped_tables_are_plain_columns_and_tsv_is_one_line_per_row() {
    let lab = Lab::new();
    lab.member("m1").provider("gemini", State::EnvKey).start();
    lab.member("m2").provider("gemini", State::NoAuth).start();
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    // The tests' stdout is a pipe: no --format means plain columns.
    let plain = lab.fleetauth(&["sweep", "-i", inv]);
    plain.assert_exit(1);
    assert!(
        !plain.stdout.contains(['│', '┆', '─', '═', '┌']) && !plain.stdout.contains('\x1b'),
        "{plain}"
    );
    let lines: Vec<&str> = plain.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "header, two rows, summary\n{plain}");
    assert!(lines[0].starts_with("MEMBER  PROVIDER  STATE"), "{plain}");
    let m2: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(m2[..4], ["m2", "gemini", "needs_auth", "-"], "{plain}");
    // Columns line up: each row's STATE starts where its header does.
    let at = lines[0].find("STATE").unwrap();
    assert!(lines[1][at..].starts_with("ready") && lines[2][at..].starts_with("needs_auth"));
    assert_eq!(
        lines[3],
        "2 members, 2 rows: 1 ready, 1 needs_auth, 0 not_installed, 0 unreachable, 0 error"
    );
    // --format table still draws the box.
    let table = lab.fleetauth(&["sweep", "-i", inv, "--format", "table"]);
    assert!(table.stdout.contains('┆'), "{table}");
    let tsv = lab.fleetauth(&["sweep", "-i", inv, "--format", "tsv"]);
    let rows: Vec<Vec<&str>> = tsv
        .stdout
        .lines()
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{tsv}");
    assert_eq!(rows[0][..4], ["member", "host", "provider", "state"]);
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{tsv}");
    assert_eq!(
        (rows[2][0], rows[2][3], rows[2][4]),
        ("m2", "needs_auth", "")
    );
}

#[test]
fn run_json_gives_each_member_status_and_output_exact_when_not_utf8() {
    let lab = Lab::new();
    lab.member("m1").provider("gemini", State::EnvKey).start();
    lab.down_member("dead");
    let inv = lab.inventory("providers = [\"gemini\"]");
    let script = "printf 'out\\n'; printf 'bad \\377\\n' >&2; exit 3";
    let out = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "json",
        "--",
        "sh",
        "-c",
        script,
    ]);
    out.assert_exit(255);
    let doc = out.json();
    let m1 = &doc["results"][0];
    assert_eq!(
        (&m1["member"], &m1["status"], &m1["stdout"]),
        (&Value::from("m1"), &Value::from(3), &Value::from("out\n")),
        "{out}"
    );
    assert_eq!(m1["stderr"], "bad \u{fffd}\n");
    assert_eq!(m1["stderr_base64"], "YmFkIP8K", "exactly `bad \\377\\n`");
    assert!(m1.get("stdout_base64").is_none());
    let dead = &doc["results"][1];
    assert_eq!(dead["status"], 255);
    assert!(
        dead["note"].as_str().unwrap().starts_with("unreachable"),
        "{dead}"
    );
    assert_eq!(
        doc["summary"],
        serde_json::json!({"members": 2, "succeeded": 0, "failed": 2, "status": 255})
    );
    // The member's output is in the document, not printed beside it.
    assert!(!out.stdout.contains("m1 | "));

    let lines = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "jsonl",
        "--",
        "echo",
        "hi",
    ]);
    let objects: Vec<Value> = lines
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(objects.len(), 3, "{lines}");
    let m1 = objects.iter().find(|o| o["member"] == "m1").unwrap();
    assert_eq!(
        (&m1["status"], &m1["stdout"]),
        (&Value::from(0), &Value::from("hi\n"))
    );
    assert_eq!(objects[2]["summary"]["succeeded"], 1);

    let junit = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "junit",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let doc = roxmltree::Document::parse(&junit.stdout).expect("well-formed XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 2);
    let failure = cases[0]
        .children()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(failure.attribute("message"), Some("exit status 3"));
    let err = cases[0]
        .children()
        .find(|n| n.has_tag_name("system-err"))
        .unwrap();
    assert_eq!(err.text(), Some("bad \u{fffd}\n"));
    assert!(cases[1].children().any(|n| n.has_tag_name("error")));

    let refused = lab.fleetauth(&[
        "run",
        "-i",
        inv.to_str().unwrap(),
        "--format",
        "prometheus",
        "--",
        "true",
    ]);
    refused.assert_exit(2);
    refused.assert_stderr_contains("not available");
}

#[test]
fn log_lines_carry_no_escape_codes_when_stderr_is_not_a_terminal() {
    let lab = Lab::new();
    lab.member("m1").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    let out = lab
        .run(&["sweep", "-i", inv.to_str().unwrap(), "--format", "json"])
        .env("RUST_LOG", "fleetauth=debug")
        .output();
    out.assert_exit(0);
    assert!(out.stderr.contains("DEBUG"), "no log line to check\n{out}");
    assert!(!out.stderr.contains('\x1b'), "{out}");
}

/// A real pipeline: `head -1` takes the first JSON line and goes; fleetauth, still writing the
/// other members' lines, ends with its own status (0: all ready) and says nothing about it.
#[test]
fn piping_into_head_ends_quietly_with_the_runs_status() {
    let lab = Lab::new();
    for name in ["m1", "m2", "m3"] {
        lab.member(name).provider("gemini", State::EnvKey).start();
    }
    let inv = lab.inventory("");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(r#""$0" sweep -i "$1" --format jsonl 2>err | head -1; echo "status ${PIPESTATUS[*]}""#)
        .arg(env!("CARGO_BIN_EXE_fleetauth"))
        .arg(&inv)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", lab.operator_home())
        .env("FLEETAUTH_HOME", lab.fleetauth_home())
        .env("XDG_CONFIG_HOME", lab.config_home())
        .current_dir(lab.dir());
    let out = support::capture(cmd, None, Duration::from_secs(60));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let first: Value = serde_json::from_str(lines[0]).expect("one JSON line");
    assert_eq!(first["state"], "ready");
    assert_eq!(lines[1], "status 0 0", "{out}");
    let stderr = std::fs::read_to_string(lab.dir().join("err")).unwrap();
    assert!(stderr.is_empty(), "{stderr}");
}

/// On a terminal (util-linux `script` gives fleetauth one), `auto` draws the box table with
/// coloured states; `TERM=dumb` and `NO_COLOR` keep the table and drop every escape code.
#[test]
fn a_terminal_gets_the_boxed_table_and_colour_unless_term_is_dumb() {
    let lab = Lab::new();
    lab.member("m1").provider("gemini", State::EnvKey).start();
    let inv = lab.inventory("");
    let on_tty = |env: &[(&str, &str)]| {
        let line = format!(
            "stty cols 200 rows 50; {} sweep -i {} --no-input",
            env!("CARGO_BIN_EXE_fleetauth"),
            inv.display()
        );
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", lab.operator_home())
            .env("FLEETAUTH_HOME", lab.fleetauth_home())
            .env("XDG_CONFIG_HOME", lab.config_home())
            .current_dir(lab.dir());
        for (k, v) in env {
            cmd.env(k, v);
        }
        support::capture(cmd, None, Duration::from_secs(60))
    };
    let colour = on_tty(&[("TERM", "xterm")]);
    colour.assert_exit(0);
    assert!(colour.stdout.contains('┆'), "{colour}");
    let coloured_ready = "\x1b[38;5;10m ready";
    assert!(colour.stdout.contains(coloured_ready), "{colour:?}");
    // NO_COLOR: no colour (the progress bar may still redraw its line).
    let no_color = on_tty(&[("TERM", "xterm"), ("NO_COLOR", "1")]);
    no_color.assert_exit(0);
    assert!(no_color.stdout.contains('┆'), "{no_color}");
    assert!(
        !no_color.stdout.contains("\x1b[38;5"),
        "{:?}",
        no_color.stdout
    );
    // TERM=dumb: no escape code at all, no progress bar either.
    let dumb = on_tty(&[("TERM", "dumb")]);
    dumb.assert_exit(0);
    assert!(dumb.stdout.contains('┆'), "{dumb}");
    assert!(!dumb.stdout.contains('\x1b'), "{:?}", dumb.stdout);
}
