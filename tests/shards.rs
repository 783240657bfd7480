//! `--shard K/N` and `report merge` against real members: N jobs cover every member exactly once,
//! and merging their JSON documents gives the whole fleet's document, summary and exit status.

mod support;

use std::collections::BTreeSet;
use std::fs;

use support::{Lab, State};

#[test]
fn shards_cover_the_fleet_once_and_merge_into_the_whole_report() {
    let lab = Lab::new();
    let key = support::fake::gemini_key();
    for i in 0..7 {
        let state = if i % 2 == 0 {
            State::EnvKey
        } else {
            State::NoAuth
        };
        lab.member(&format!("m{i}"))
            .provider("gemini", state)
            .start();
    }
    let inv = lab.inventory("");
    let inv = inv.to_str().unwrap();
    let whole = lab.fleetauth(&["sweep", "-i", inv, "--format", "json"]);
    whole.assert_exit(1);
    assert_eq!(whole.json()["summary"]["rows"], 7);

    let mut files = Vec::new();
    let mut members = Vec::new();
    for k in 1..=3 {
        // Shards may write either format: a JSON document or JSON lines.
        let shard = format!("{k}/3");
        let format = if k == 2 { "jsonl" } else { "json" };
        let out = lab.fleetauth(&["sweep", "-i", inv, "--format", format, "--shard", &shard]);
        assert!(out.code == Some(0) || out.code == Some(1), "{out}");
        let rows: Vec<serde_json::Value> = match format {
            "json" => out.json()["results"].as_array().unwrap().clone(),
            _ => out
                .stdout
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v.get("summary").is_none())
                .collect(),
        };
        for r in rows {
            members.push(r["member"].as_str().unwrap().to_string());
        }
        let path = lab.dir().join(format!("shard-{k}.json"));
        fs::write(&path, &out.stdout).unwrap();
        files.push(path.to_str().unwrap().to_string());
    }
    let unique: BTreeSet<&String> = members.iter().collect();
    assert_eq!(members.len(), 7, "every member once: {members:?}");
    assert_eq!(unique.len(), 7, "{members:?}");

    let mut args = vec!["report", "merge", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let merged = lab.fleetauth(&args);
    merged.assert_exit(1);
    assert_eq!(
        merged.json()["summary"],
        whole.json()["summary"],
        "{merged}"
    );
    for m in &unique {
        assert_eq!(
            merged.row(m, "gemini")["state"],
            whole.row(m, "gemini")["state"],
            "{m}"
        );
    }
    merged.assert_no_secret(&key);

    // The same shard twice is refused, naming both files.
    let nonempty = files
        .iter()
        .find(|f| fs::read_to_string(f).unwrap().contains("\"member\""))
        .unwrap();
    let twice = lab.fleetauth(&["report", "merge", nonempty, nonempty]);
    twice.assert_exit(2);
    twice.assert_stderr_contains("given twice");
    // A document cut short (a row lost, the summary kept) is refused, not merged.
    let whole_path = lab.dir().join("whole.json");
    let mut doc = whole.json();
    doc["results"].as_array_mut().unwrap().pop();
    fs::write(&whole_path, doc.to_string()).unwrap();
    let refused = lab.fleetauth(&["report", "merge", whole_path.to_str().unwrap()]);
    refused.assert_exit(2);
    refused.assert_stderr_contains("does not match");
    // JSON lines without their summary line (the job died) are refused.
    let lines = fs::read_to_string(&files[1]).unwrap();
    let cut: String = lines
        .lines()
        .filter(|l| !l.contains("\"summary\""))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&whole_path, cut).unwrap();
    let died = lab.fleetauth(&["report", "merge", whole_path.to_str().unwrap()]);
    died.assert_exit(2);
    died.assert_stderr_contains("did not finish");
    // Not a document at all.
    fs::write(&whole_path, "hello").unwrap();
    let junk = lab.fleetauth(&["report", "merge", whole_path.to_str().unwrap()]);
    junk.assert_exit(2);
    junk.assert_stderr_contains("not a fleetauth JSON document");

    // A bad shard is a usage error before anything is contacted.
    let bad = lab.fleetauth(&["sweep", "-i", inv, "--shard", "4/3"]);
    bad.assert_exit(2);
    bad.assert_stderr_contains("is not K/N");
}
