//! Fault injection, end to end: the real fleetauth binary against member containers that are
//! killed, paused, cut off the network, rebuilt with a new host key or throttled by sshd while
//! fleetauth works — and two provisioners racing on the same members. Each test asserts what
//! happened to every member, not just that fleetauth survived: provisioning is one transaction
//! per member × provider on one channel (src/remote/provision.sh), so a member hit mid-way holds
//! the old env file or the new one with the old kept beside it — never a partial one — and an
//! unfinished transaction is undone by the member itself when it hears the connection is gone,
//! or, if it was killed, by the next transaction on that file.
//!
//! Needs a Docker engine; the member image is built offline by `docker/lab build` (once per
//! run, cached). Without an engine each test prints why and passes as skipped — unless
//! `FLEETAUTH_REQUIRE_DOCKER=1`, where it fails: CI must not go green on a broken setup.
//!
//! Timing: a fault hits a precise phase of fleetauth's work through the gates of
//! docker/fault-hooks (the member holds that phase until the test has done its damage), never
//! through sleeps. Wall-time assertions are generous bounds (deadline + margin), never tight.

mod docker_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use docker_support::{
    Lab, MemberSpec, docker, docker_or_skip, fake_anthropic_key, fake_gemini_key,
};

/// The operator's env file on members before provisioning: a comment and a variable
/// fleetauth does not manage, both of which must survive every push.
const OLD_ENV: &str = "# the operator's own settings\nexport TEAM='blue'\n";
/// The env file's directory: the env file, its lock, and what a transaction keeps beside it.
const ENV_DIR: &str = "/home/agent/.config/fleetauth";
/// A transaction's temporary copy of the new file: `env.fleetauth-tmp.<pid>`.
const TMP_PREFIX: &str = "env.fleetauth-tmp.";
/// The old file, kept (as the same inode) until the client's verdict; gone after it.
const TXN_FILE: &str = "env.fleetauth-txn";
/// The provisioning lock (flock(1) on the member image): the only other file allowed there.
const LOCK_FILE: &str = "env.fleetauth-lock";

const WAIT: Duration = Duration::from_secs(60);

/// The phases of provisioning a member can die in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Authenticating the connection that will run the transaction (provision's second one).
    Connect,
    /// The first probe (observe and decide).
    Probe,
    /// Inside the transaction, lock held: 16 bytes of the new file's temporary copy written.
    Upload,
    /// Inside the transaction: the complete temporary copy about to replace the env file, the
    /// old file already kept as `env.fleetauth-txn`.
    Rename,
    /// Inside the transaction: the new file in place, its verification prompt running, no
    /// verdict yet.
    Verify,
}

impl Phase {
    /// The gate that holds this phase and how many hits pass before it holds.
    fn gate(self) -> (&'static str, u32) {
        match self {
            Phase::Connect => ("connect", 1),
            Phase::Probe => ("probe", 0),
            Phase::Upload => ("upload", 0),
            Phase::Rename => ("rename", 0),
            Phase::Verify => ("verify", 0),
        }
    }
}

fn state(row: &serde_json::Value) -> &str {
    row["state"].as_str().unwrap_or("?")
}

/// What is in a member's env-file directory: the env file, the transaction's temporary copies
/// and kept old file, and anything else fleetauth left (the lock file aside).
#[derive(Debug)]
struct EnvDir {
    env: Option<String>,
    tmp: Vec<String>,
    txn: Option<String>,
    other: Vec<String>,
}

impl EnvDir {
    fn of(m: &docker_support::Member) -> EnvDir {
        let mut d = EnvDir {
            env: None,
            tmp: Vec::new(),
            txn: None,
            other: Vec::new(),
        };
        for (name, text) in m.read_dir(ENV_DIR) {
            match name.as_str() {
                "env" => d.env = Some(text),
                TXN_FILE => d.txn = Some(text),
                LOCK_FILE => {}
                n if n.starts_with(TMP_PREFIX) => d.tmp.push(text),
                _ => d.other.push(name),
            }
        }
        d
    }

    /// Only the env file (and the lock): no transaction is open or left unfinished.
    fn assert_settled(&self, who: &str) {
        assert!(
            self.tmp.is_empty() && self.txn.is_none() && self.other.is_empty(),
            "{who}: files left beside the env file: {self:?}"
        );
    }
}

/// Kill one member (`docker kill`) while provisioning holds it at `phase`. Its env file must be
/// the old one or the new one — the one this phase implies — never partial, with exactly the
/// leftovers that phase implies; its row says it was lost; the member next to it is provisioned
/// normally. Started again, the victim's unfinished transaction is rolled back by the next
/// provision that touches the env file (here: another provider's key).
fn kill_during_provision(phase: Phase) {
    let test = format!("kill_during_{phase:?}").to_lowercase();
    if !docker_or_skip(&test) {
        return;
    }
    let mut lab = Lab::new(&test);
    let members = lab.start(&[
        MemberSpec::new("victim", "gemini=no_auth,claude=no_auth").hooks(),
        MemberSpec::new("bystander", "gemini=no_auth"),
    ]);
    let (victim, bystander) = (&members[0], &members[1]);
    victim.set_env_file(OLD_ENV);
    bystander.set_env_file(OLD_ENV);
    lab.known_hosts("known_hosts", &[victim, bystander]);
    let inventory = lab.inventory(
        "inventory.toml",
        &[("victim", victim), ("bystander", bystander)],
        &[],
    );
    let key = fake_gemini_key();
    let new_env = format!("{OLD_ENV}export GEMINI_API_KEY='{key}'\n");

    let (gate, pass) = phase.gate();
    victim.arm(gate, pass);
    let run = lab.spawn_fleetauth(
        &["provision", "-i", inventory.to_str().unwrap()],
        &[("GEMINI_API_KEY", &key)],
    );
    victim.wait_reached(gate, WAIT, &run);
    victim.kill();
    let done = run.wait(Duration::from_secs(120));

    // The victim: old or new, never partial — and which one, with which leftovers, is what the
    // phase implies (the evidence that the kill landed inside the phase it claims).
    let dir = EnvDir::of(victim);
    let env = dir.env.clone().expect("the victim's env file exists");
    assert!(
        env == OLD_ENV || env == new_env,
        "{phase:?}: the env file is neither the old nor the new one (partial?):\n{env:?}"
    );
    assert!(dir.other.is_empty(), "{phase:?}: unexpected files: {dir:?}");
    match phase {
        Phase::Connect | Phase::Probe => {
            assert_eq!(env, OLD_ENV, "{phase:?}: killed before the transaction");
            dir.assert_settled("victim");
        }
        Phase::Upload => {
            assert_eq!(
                env, OLD_ENV,
                "killed mid-upload: the env file is the old one"
            );
            assert_eq!(
                dir.tmp.len(),
                1,
                "killed mid-upload: one temporary copy: {dir:?}"
            );
            let tmp = &dir.tmp[0];
            assert!(
                tmp.len() < new_env.len() && new_env.starts_with(tmp.as_str()),
                "killed mid-upload: the temporary copy should be a strict prefix of the new file, got {} of {} bytes",
                tmp.len(),
                new_env.len()
            );
            assert_eq!(dir.txn, None, "killed mid-upload: nothing replaced yet");
        }
        Phase::Rename => {
            assert_eq!(
                env, OLD_ENV,
                "killed before the rename: the env file is the old one"
            );
            assert_eq!(
                dir.tmp,
                vec![new_env.clone()],
                "killed before the rename: the temporary copy is complete"
            );
            assert_eq!(
                dir.txn.as_deref(),
                Some(OLD_ENV),
                "the old file was kept before the rename"
            );
        }
        Phase::Verify => {
            assert_eq!(
                env, new_env,
                "killed while verifying: the new file is in place, complete"
            );
            assert!(
                dir.tmp.is_empty(),
                "the temporary copy was renamed: {dir:?}"
            );
            assert_eq!(
                dir.txn.as_deref(),
                Some(OLD_ENV),
                "killed before the verdict: the old file is still kept for a restore"
            );
        }
    }

    // The row says the member was lost, and claims neither a verified key nor a restore the
    // member never confirmed.
    let v = done.row("victim", "gemini");
    let said = done.describe("victim", "gemini");
    assert!(
        matches!(state(v), "unreachable" | "error"),
        "{phase:?}: the victim's row should say it was lost: {said}"
    );
    if phase == Phase::Connect {
        assert_ne!(
            v["reason"], "auth",
            "a member killed during authentication is a lost connection, not a refused key: {said}"
        );
    }
    if matches!(phase, Phase::Upload | Phase::Rename | Phase::Verify) {
        assert_eq!(v["action"], "failed", "{said}");
        let detail = v["detail"].as_str().unwrap_or("");
        assert!(
            !detail.contains("restored") && !detail.contains("verified"),
            "{phase:?}: the member confirmed no restore and verified nothing: {said}"
        );
    }

    // The bystander: provisioned as if nothing happened.
    let b = done.row("bystander", "gemini");
    assert_eq!(
        (state(b), b["action"].as_str()),
        ("ready", Some("pushed")),
        "{}",
        done.describe("bystander", "gemini")
    );
    let bdir = EnvDir::of(bystander);
    assert_eq!(
        bdir.env.as_deref(),
        Some(new_env.as_str()),
        "the bystander's env file is the merged one"
    );
    bdir.assert_settled("bystander");

    assert_eq!(done.code, Some(1), "a lost member makes the run exit 1");
    assert!(
        !done.stdout.contains(&key) && !done.stderr.contains(&key),
        "the key must never be printed"
    );
    assert!(
        done.elapsed < Duration::from_secs(60),
        "{phase:?}: the run took {:?}; the deadlines (connect 10s, command 20s) should end it before",
        done.elapsed
    );

    // The victim comes back. The next transaction on its env file (claude's key) first rolls back
    // whatever the killed one left: the file ends with the operator's lines and claude's key only
    // — for `Verify`, the unverified gemini key is gone — and nothing is left beside it.
    victim.start();
    let claude_key = fake_anthropic_key();
    let inv_claude = lab.inventory(
        "claude.toml",
        &[("victim", victim)],
        &[("providers", "[\"claude\"]")],
    );
    let later = lab.fleetauth(
        &["provision", "-i", inv_claude.to_str().unwrap()],
        &[("ANTHROPIC_API_KEY", &claude_key)],
    );
    let c = later.row("victim", "claude");
    assert_eq!(
        (state(c), c["action"].as_str()),
        ("ready", Some("pushed")),
        "{}",
        later.describe("victim", "claude")
    );
    let after = EnvDir::of(victim);
    assert_eq!(
        after.env.as_deref(),
        Some(format!("{OLD_ENV}export ANTHROPIC_API_KEY='{claude_key}'\n").as_str()),
        "{phase:?}: the later provision should have rolled back the killed transaction first"
    );
    after.assert_settled("victim, after the later provision");
    assert_eq!(later.code, Some(0));

    eprintln!(
        "{test}: {:.1}s; {}; env file: {}; later provision {:.1}s",
        done.elapsed.as_secs_f64(),
        said,
        if env == OLD_ENV { "old" } else { "new" },
        later.elapsed.as_secs_f64()
    );
}

#[test]
fn kill_during_connect() {
    kill_during_provision(Phase::Connect);
}

#[test]
fn kill_during_probe() {
    kill_during_provision(Phase::Probe);
}

#[test]
fn kill_during_upload() {
    kill_during_provision(Phase::Upload);
}

#[test]
fn kill_during_rename() {
    kill_during_provision(Phase::Rename);
}

#[test]
fn kill_during_verify() {
    kill_during_provision(Phase::Verify);
}

/// A member frozen (`docker pause`) and a member cut off the network (`docker network
/// disconnect`) while their transactions verify: fleetauth gives up at its deadline and says the
/// member will put things back itself; until the member hears of it, the new file is in place with
/// the old one kept. Once unpaused or reconnected, each member learns the connection is gone, takes
/// that as `restore` and puts the old file back by itself — byte for byte, nothing left beside it
/// — and frees the lock: the next provision goes straight through.
#[test]
fn paused_or_cut_mid_transaction_restores_itself() {
    if !docker_or_skip("paused_or_cut_mid_transaction_restores_itself") {
        return;
    }
    let mut lab = Lab::new("mid-transaction");
    let members = lab.start(&[
        MemberSpec::new("paused", "gemini=no_auth").hooks(),
        MemberSpec::new("cut", "gemini=no_auth").hooks(),
    ]);
    let (paused, cut) = (&members[0], &members[1]);
    lab.known_hosts("known_hosts", &[paused, cut]);
    // command_timeout 8s: the verification prompt gets 3s (8s less fleetauth's margin), ample to
    // do the damage before it answers; the transaction's deadline is 2 × 8s + the 30s lock wait.
    let inventory = lab.inventory(
        "inventory.toml",
        &[("paused", paused), ("cut", cut)],
        &[("connect_timeout", "\"5s\""), ("command_timeout", "\"8s\"")],
    );
    let inv = inventory.to_str().unwrap();
    let key = fake_gemini_key();
    let new_env = format!("{OLD_ENV}export GEMINI_API_KEY='{key}'\n");
    for m in &members {
        m.set_env_file(OLD_ENV);
        m.arm("verify", 0);
    }
    let run = lab.spawn_fleetauth(&["provision", "-i", inv], &[("GEMINI_API_KEY", &key)]);
    paused.wait_reached("verify", WAIT, &run);
    paused.pause();
    cut.wait_reached("verify", WAIT, &run);
    cut.disconnect();
    cut.release("verify"); // the prompt answers; the answer has no way out
    let done = run.wait(Duration::from_secs(120));

    for name in ["paused", "cut"] {
        let r = done.row(name, "gemini");
        let said = done.describe(name, "gemini");
        assert_eq!(
            (state(r), r["action"].as_str()),
            ("error", Some("failed")),
            "{said}"
        );
        let detail = r["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("timed out") && detail.contains("puts the previous state back"),
            "{name}: the row should say fleetauth gave up and the member restores itself: {said}"
        );
        assert!(
            !detail.contains("restored") && !detail.contains("verified"),
            "{name}: no restore was confirmed, nothing verified: {said}"
        );
    }
    assert_eq!(done.code, Some(1));
    assert!(
        !done.stdout.contains(&key) && !done.stderr.contains(&key),
        "the key must never be printed"
    );
    assert!(
        done.elapsed < Duration::from_secs(2 * 8 + 30 + 20),
        "the run took {:?}; the transaction deadline is 2 × 8s + 30s",
        done.elapsed
    );
    // Still cut off: the transaction is open, the new file in place, the old one kept.
    let mid = EnvDir::of(cut);
    assert_eq!(mid.env.as_deref(), Some(new_env.as_str()), "cut: {mid:?}");
    assert_eq!(mid.txn.as_deref(), Some(OLD_ENV), "cut: {mid:?}");

    paused.unpause();
    paused.release("verify");
    cut.reconnect();
    let started = std::time::Instant::now();
    for m in &members {
        let name = &m.spec.name;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let open = m
                .exec(&["pgrep", "-u", "agent", "-f", "fleetauth-provision"])
                .status
                .success();
            let dir = EnvDir::of(m);
            if !open {
                assert_eq!(
                    dir.env.as_deref(),
                    Some(OLD_ENV),
                    "{name}: the transaction ended without putting the old file back: {dir:?}"
                );
                dir.assert_settled(name);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: the transaction is still open 120s after the member came back: {dir:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let restored_after = started.elapsed();
    cut.wait_sshd(Duration::from_secs(30));
    let again = lab.fleetauth(&["provision", "-i", inv], &[("GEMINI_API_KEY", &key)]);
    for m in &members {
        let name = m.spec.name.as_str();
        let r = again.row(name, "gemini");
        assert_eq!(
            (state(r), r["action"].as_str()),
            ("ready", Some("pushed")),
            "{}",
            again.describe(name, "gemini")
        );
        let dir = EnvDir::of(m);
        assert_eq!(dir.env.as_deref(), Some(new_env.as_str()), "{name}");
        dir.assert_settled(name);
    }
    assert!(
        again.elapsed < Duration::from_secs(30),
        "the lock was not free: the next provision took {:?}",
        again.elapsed
    );
    eprintln!(
        "mid-transaction: fleetauth gave up after {:.1}s; both members restored themselves {:.1}s after coming back; next provision {:.1}s",
        done.elapsed.as_secs_f64(),
        restored_after.as_secs_f64(),
        again.elapsed.as_secs_f64()
    );
}

/// `docker pause`: one member frozen before the sweep (TCP is accepted by its kernel, sshd never
/// answers) and one frozen in the middle of its probe. Each row reports its own deadline; the
/// others are unaffected and the sweep ends within the deadlines plus a margin.
#[test]
fn paused_members_hit_their_deadlines() {
    if !docker_or_skip("paused_members_hit_their_deadlines") {
        return;
    }
    let mut lab = Lab::new("paused");
    let members = lab.start(&[
        MemberSpec::new("frozen", "gemini=oauth_valid"),
        MemberSpec::new("stalled", "gemini=oauth_valid").hooks(),
        MemberSpec::new("fine", "gemini=oauth_valid"),
    ]);
    let (frozen, stalled, fine) = (&members[0], &members[1], &members[2]);
    lab.known_hosts("known_hosts", &[frozen, stalled, fine]);
    let inventory = lab.inventory(
        "inventory.toml",
        &[("frozen", frozen), ("stalled", stalled), ("fine", fine)],
        &[
            ("connect_timeout", "\"5s\""),
            ("command_timeout", "\"10s\""),
        ],
    );
    frozen.pause();
    stalled.arm("probe", 0);
    let run = lab.spawn_fleetauth(&["sweep", "-i", inventory.to_str().unwrap()], &[]);
    stalled.wait_reached("probe", WAIT, &run);
    stalled.pause();
    let done = run.wait(Duration::from_secs(120));

    let f = done.row("frozen", "gemini");
    assert_eq!(
        (state(f), f["reason"].as_str()),
        ("unreachable", Some("timeout")),
        "{}",
        done.describe("frozen", "gemini")
    );
    assert!(
        f["detail"]
            .as_str()
            .unwrap_or("")
            .contains("timed out after 5s"),
        "{}",
        done.describe("frozen", "gemini")
    );
    let s = done.row("stalled", "gemini");
    assert_eq!(state(s), "error", "{}", done.describe("stalled", "gemini"));
    assert!(
        s["detail"]
            .as_str()
            .unwrap_or("")
            .contains("within command_timeout (10s)"),
        "{}",
        done.describe("stalled", "gemini")
    );
    assert_eq!(
        state(done.row("fine", "gemini")),
        "ready",
        "{}",
        done.describe("fine", "gemini")
    );
    assert_eq!(done.code, Some(1));
    // connect (5s) + command (10s) deadlines, plus a generous margin for a loaded machine.
    assert!(
        done.elapsed < Duration::from_secs(5 + 10 + 20),
        "the sweep took {:?}",
        done.elapsed
    );
    eprintln!(
        "paused: sweep took {:.1}s; {}; {}",
        done.elapsed.as_secs_f64(),
        done.describe("frozen", "gemini"),
        done.describe("stalled", "gemini")
    );
}

/// `docker network disconnect` while the member runs its probe: the answer never comes back,
/// the row says so after the command deadline, the other member is fine; once reconnected (same
/// address) the member sweeps ready again.
#[test]
fn member_cut_off_mid_sweep() {
    if !docker_or_skip("member_cut_off_mid_sweep") {
        return;
    }
    let mut lab = Lab::new("cut");
    let members = lab.start(&[
        MemberSpec::new("cut", "gemini=oauth_valid").hooks(),
        MemberSpec::new("fine", "gemini=oauth_valid"),
    ]);
    let (cut, fine) = (&members[0], &members[1]);
    lab.known_hosts("known_hosts", &[cut, fine]);
    let inventory = lab.inventory(
        "inventory.toml",
        &[("cut", cut), ("fine", fine)],
        &[
            ("connect_timeout", "\"5s\""),
            ("command_timeout", "\"10s\""),
        ],
    );
    let inv = inventory.to_str().unwrap();
    cut.arm("probe", 0);
    let run = lab.spawn_fleetauth(&["sweep", "-i", inv], &[]);
    cut.wait_reached("probe", WAIT, &run);
    cut.disconnect();
    cut.release("probe"); // the probe finishes on the member; its answer has no way out
    let done = run.wait(Duration::from_secs(120));

    let c = done.row("cut", "gemini");
    assert!(
        matches!(state(c), "error" | "unreachable"),
        "{}",
        done.describe("cut", "gemini")
    );
    let detail = c["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("command_timeout")
            || detail.contains("timed out")
            || detail.contains("network"),
        "the row should say the member went silent: {}",
        done.describe("cut", "gemini")
    );
    assert_eq!(
        state(done.row("fine", "gemini")),
        "ready",
        "{}",
        done.describe("fine", "gemini")
    );
    assert!(
        done.elapsed < Duration::from_secs(5 + 10 + 20),
        "the sweep took {:?}",
        done.elapsed
    );

    cut.reconnect();
    cut.wait_sshd(Duration::from_secs(30));
    let again = lab.fleetauth(&["sweep", "-i", inv], &[]);
    assert_eq!(
        state(again.row("cut", "gemini")),
        "ready",
        "reconnected: {}",
        again.describe("cut", "gemini")
    );
    assert_eq!(again.code, Some(0));
    eprintln!(
        "cut: sweep took {:.1}s; {}",
        done.elapsed.as_secs_f64(),
        done.describe("cut", "gemini")
    );
}

/// A member rebuilt with a new host key at the same address: refused under strict checking,
/// refused under accept-new too (the key is known and changed), accepted under accept-new only
/// when the address is unknown — and then learned, exactly the key the container has.
#[test]
fn rebuilt_member_with_a_new_host_key() {
    if !docker_or_skip("rebuilt_member_with_a_new_host_key") {
        return;
    }
    let mut lab = Lab::new("hostkey");
    let members = lab.start(&[MemberSpec::new("rebuilt", "gemini=oauth_valid")]);
    let m = &members[0];
    let known = lab.known_hosts("known_hosts", &[m]);
    let old_key = m.host_key();
    let entries = [("rebuilt", m)];
    let strict = lab.inventory("strict.toml", &entries, &[]);
    let accept_new = lab.inventory(
        "accept-new.toml",
        &entries,
        &[("host_key_checking", "\"accept-new\"")],
    );
    let sweep = |inv: &PathBuf| lab.fleetauth(&["sweep", "-i", inv.to_str().unwrap()], &[]);

    let before = sweep(&strict);
    assert_eq!(state(before.row("rebuilt", "gemini")), "ready");

    lab.recreate(m);
    let new_key = m.host_key();
    assert_ne!(
        old_key, new_key,
        "recreating the container made a new host key"
    );

    for (inv, mode) in [(&strict, "strict"), (&accept_new, "accept-new")] {
        let after = sweep(inv);
        let r = after.row("rebuilt", "gemini");
        assert_eq!(
            (state(r), r["reason"].as_str()),
            ("unreachable", Some("host_key")),
            "{mode}: {}",
            after.describe("rebuilt", "gemini")
        );
        assert!(
            r["detail"]
                .as_str()
                .unwrap_or("")
                .contains("host key changed"),
            "{mode}: {}",
            after.describe("rebuilt", "gemini")
        );
    }
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{} {old_key}\n", m.ip),
        "a changed key is never written to known_hosts"
    );

    // An address known_hosts has never seen.
    let fresh = lab.path("fresh_known_hosts");
    std::fs::write(&fresh, "").unwrap();
    let fresh_toml = format!("\"{}\"", fresh.display());
    let strict_fresh = lab.inventory(
        "strict-fresh.toml",
        &entries,
        &[("known_hosts", &fresh_toml)],
    );
    let accept_fresh = lab.inventory(
        "accept-fresh.toml",
        &entries,
        &[
            ("known_hosts", &fresh_toml),
            ("host_key_checking", "\"accept-new\""),
        ],
    );
    let unknown = sweep(&strict_fresh);
    let r = unknown.row("rebuilt", "gemini");
    assert_eq!(
        (state(r), r["reason"].as_str()),
        ("unreachable", Some("host_key")),
        "strict, unknown: {}",
        unknown.describe("rebuilt", "gemini")
    );
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or("")
            .contains("not in known_hosts"),
        "{}",
        unknown.describe("rebuilt", "gemini")
    );
    let learned = sweep(&accept_fresh);
    assert_eq!(
        state(learned.row("rebuilt", "gemini")),
        "ready",
        "accept-new, unknown: {}",
        learned.describe("rebuilt", "gemini")
    );
    let text = std::fs::read_to_string(&fresh).unwrap();
    let new_blob = new_key.split_whitespace().nth(1).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains(&m.ip) && l.contains(new_blob)),
        "accept-new records the container's key for {}: {text:?}",
        m.ip
    );
    let trusted = sweep(&strict_fresh);
    assert_eq!(
        state(trusted.row("rebuilt", "gemini")),
        "ready",
        "strict, with the learned key: {}",
        trusted.describe("rebuilt", "gemini")
    );
}

/// Sixteen inventory members on one container whose sshd allows only two connections in the
/// handshake at once (`MaxStartups 2`): sshd drops the excess before its banner, fleetauth
/// retries with backoff, and every member ends up ready — no spurious `unreachable`.
#[test]
fn maxstartups_throttling_is_retried() {
    if !docker_or_skip("maxstartups_throttling_is_retried") {
        return;
    }
    let mut lab = Lab::new("maxstartups");
    let members = lab.start(&[
        MemberSpec::new("busy", "gemini=oauth_valid").sshd("MaxStartups 2\nLogLevel VERBOSE")
    ]);
    let m = &members[0];
    lab.known_hosts("known_hosts", &[m]);
    let names: Vec<String> = (1..=16).map(|i| format!("n{i:02}")).collect();
    let entries: Vec<(&str, &docker_support::Member)> =
        names.iter().map(|n| (n.as_str(), m)).collect();
    let inventory = lab.inventory(
        "inventory.toml",
        &entries,
        &[
            ("connect_timeout", "\"30s\""),
            ("command_timeout", "\"30s\""),
        ],
    );
    let done = lab.fleetauth(
        &["sweep", "-i", inventory.to_str().unwrap(), "-j", "16"],
        &[("RUST_LOG", "fleetauth=debug")],
    );
    let rows = done.rows();
    assert_eq!(rows.len(), 16);
    for r in &rows {
        assert_eq!(
            state(r),
            "ready",
            "{}",
            done.describe(r["member"].as_str().unwrap(), "gemini")
        );
    }
    assert_eq!(done.code, Some(0));
    // The throttling really happened (else this test proves nothing) and was retried.
    let logs = m.logs();
    let drops = logs.matches("past MaxStartups").count();
    assert!(drops > 0, "sshd dropped no connection; its log:\n{logs}");
    assert!(
        done.stderr.contains("retrying"),
        "fleetauth did not log a retry; stderr:\n{}",
        done.stderr
    );
    eprintln!(
        "maxstartups: sshd dropped {drops} connection(s); sweep took {:.1}s",
        done.elapsed.as_secs_f64()
    );
}

/// Until `cond` holds; panics (with what the runs printed, if one already finished) after
/// [`WAIT`].
fn wait_for(what: &str, runs: &[&docker_support::Running], mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        let early = runs.iter().find_map(|r| r.poll());
        assert!(
            std::time::Instant::now() < deadline && early.is_none(),
            "{what}: not within {WAIT:?}; {}",
            early.unwrap_or_else(|| "the runs are still going".into())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two provisioners at once on the same member and provider, one with a good key and one with
/// a key the vendor rejects, forced to overlap as tightly as the lock allows: both have observed
/// the member (and decided to push) before either transaction starts, and the second transaction
/// starts while the first one's key is in place, unverified. The lock serialises them end to end
/// — the second waits while the first verifies — so in either order the member ends with the
/// operator's lines and the good key, verified; the rejected key is restored away, never left
/// behind, and never undoes the good one; each run's row says exactly that, and a sweep agrees.
/// Both orders run, at once: member `x` has the good key's transaction first, member `y` the
/// rejected one's.
#[test]
fn two_provisioners_at_once_good_and_rejected_key() {
    if !docker_or_skip("two_provisioners_at_once_good_and_rejected_key") {
        return;
    }
    let mut lab = Lab::new("two-provisioners");
    let members = lab.start(&[
        MemberSpec::new("x", "gemini=no_auth").hooks(),
        MemberSpec::new("y", "gemini=no_auth").hooks(),
    ]);
    lab.known_hosts("known_hosts", &[&members[0], &members[1]]);
    let good = fake_gemini_key();
    let bad = fake_gemini_key();
    let good_line = format!("export GEMINI_API_KEY='{good}'\n");
    // One round per member, both at once: `x` with the good key's transaction first, `y` with
    // the rejected one's.
    let round = |m: &docker_support::Member, name: &str, good_first: bool| -> String {
        m.set_env_file(OLD_ENV);
        m.vendor_rejects(&bad);
        // Generous deadlines: a member held at a gate must not time out while the test arranges
        // the overlap.
        let inventory = lab.inventory(
            &format!("{name}.toml"),
            &[(name, m)],
            &[
                ("connect_timeout", "\"30s\""),
                ("command_timeout", "\"40s\""),
                ("probe_timeout", "\"30s\""),
            ],
        );
        let inv = inventory.to_str().unwrap();
        let (first_key, second_key) = if good_first {
            (&good, &bad)
        } else {
            (&bad, &good)
        };
        let provision =
            |key: &str| lab.spawn_fleetauth(&["provision", "-i", inv], &[("GEMINI_API_KEY", key)]);

        // The first run observes, decides to push, and waits at the start of its transaction.
        m.arm("push", 0);
        m.arm("verify", 0);
        let first = provision(first_key);
        m.wait_reached("push", WAIT, &first);
        // The second observes the same untouched member (its first connection passes), decides
        // to push too, and its transaction's connection waits in authentication.
        m.arm("connect", 1);
        let second = provision(second_key);
        wait_for(
            &format!("{name}: the second run's transaction connecting"),
            &[&first, &second],
            || {
                m.exec(&[docker_support::HOOKS, "reached", "connect"])
                    .status
                    .success()
            },
        );
        // The first transaction takes the lock, installs its key and verifies it...
        m.release("push");
        m.wait_reached("verify", WAIT, &first);
        // ...while the second transaction starts and waits on the lock.
        m.release("connect");
        wait_for(
            &format!("{name}: the second transaction waiting on the lock"),
            &[&first, &second],
            || {
                // The first transaction is past its lock: any flock(1) is the second's.
                m.exec(&["pgrep", "-u", "agent", "-x", "flock"])
                    .status
                    .success()
            },
        );
        let mid = EnvDir::of(m);
        assert_eq!(
            mid.env,
            Some(format!("{OLD_ENV}export GEMINI_API_KEY='{first_key}'\n")),
            "{name}: mid-transaction the first run's key is in place"
        );
        assert_eq!(mid.txn.as_deref(), Some(OLD_ENV), "{name}: {mid:?}");
        assert_eq!(m.hits("verify"), 1, "{name}: one verification at a time");
        m.release("verify");
        let first = first.wait(Duration::from_secs(150));
        let second = second.wait(Duration::from_secs(150));
        let (g, b) = if good_first {
            (&first, &second)
        } else {
            (&second, &first)
        };

        let dir = EnvDir::of(m);
        assert_eq!(
            dir.env,
            Some(format!("{OLD_ENV}{good_line}")),
            "{name}: the operator's lines and the good key, nothing else"
        );
        dir.assert_settled(name);
        let gr = g.row(name, "gemini");
        assert_eq!(
            (state(gr), gr["action"].as_str()),
            ("ready", Some("pushed")),
            "{}",
            g.describe(name, "gemini")
        );
        let br = b.row(name, "gemini");
        assert!(
            state(br) != "ready"
                && br["action"] == "failed"
                && br["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("previous state restored"),
            "{name}: the rejected run must say its key failed and was restored away: {}",
            b.describe(name, "gemini")
        );
        assert_eq!((g.code, b.code), (Some(0), Some(1)), "{name}");
        for run in [g, b] {
            for k in [&good, &bad] {
                assert!(
                    !run.stdout.contains(k.as_str()) && !run.stderr.contains(k.as_str()),
                    "{name}: a key was printed"
                );
            }
        }
        format!(
            "{name}: {} first, {:.1}s and {:.1}s",
            if good_first { "good" } else { "rejected" },
            first.elapsed.as_secs_f64(),
            second.elapsed.as_secs_f64()
        )
    };
    let report: Vec<String> = std::thread::scope(|s| {
        let x = s.spawn(|| round(&members[0], "x", true));
        let y = s.spawn(|| round(&members[1], "y", false));
        [x, y]
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    // The report is the members' state: a sweep finds the good key working on both.
    let both = lab.inventory("both.toml", &[("x", &members[0]), ("y", &members[1])], &[]);
    let after = lab.fleetauth(&["sweep", "-i", both.to_str().unwrap()], &[]);
    for name in ["x", "y"] {
        assert_eq!(
            state(after.row(name, "gemini")),
            "ready",
            "{}",
            after.describe(name, "gemini")
        );
    }
    eprintln!("two provisioners: {}", report.join("; "));
}

/// The lab itself: `docker/lab up` starts members whose host keys (read from the containers)
/// pass strict checking and whose states are what members.tsv says; `up` again changes
/// nothing; `down` leaves no container, network or volume behind, and is safe to repeat.
#[test]
fn lab_up_sweep_down() {
    if !docker_or_skip("lab_up_sweep_down") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lab");
    let lab = |args: &[&str]| {
        let o = Command::new(docker_support::repo().join("docker/lab"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "docker/lab {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let out_s = out.to_str().unwrap();
    // Removes the lab even when an assertion below fails.
    struct Down<'a>(&'a str);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = Command::new(docker_support::repo().join("docker/lab"))
                .args(["down", "--out", self.0])
                .stdin(Stdio::null())
                .output();
        }
    }
    let _down = Down(out_s);
    lab(&["up", "--members", "12", "--out", out_s]);
    let tsv = std::fs::read_to_string(out.join("members.tsv")).unwrap();
    let members: Vec<Vec<String>> = tsv
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(members.len(), 12);
    let lab_id = members[0][1]
        .strip_prefix("fleetauth-lab-")
        .and_then(|s| s.strip_suffix("-m01"))
        .expect("container name fleetauth-lab-<id>-m01")
        .to_string();
    let ids = |what: &str| {
        let filter = format!("label=org.fleetauth.lab={lab_id}");
        let o = match what {
            "container" => docker(&["ps", "-aq", "--filter", &filter]),
            "network" => docker(&["network", "ls", "-q", "--filter", &filter]),
            _ => docker(&["volume", "ls", "-q", "--filter", &filter]),
        };
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let containers = ids("container");
    assert_eq!(containers.len(), 12);
    assert_eq!(ids("network").len(), 1);
    let known_hosts = std::fs::read_to_string(out.join("known_hosts")).unwrap();

    let home = dir.path().join("home");
    let sweep = Command::new(env!("CARGO_BIN_EXE_fleetauth"))
        .args(["sweep", "--format", "json", "--no-input", "-i"])
        .arg(out.join("inventory.toml"))
        .env("FLEETAUTH_HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&sweep.stdout).unwrap_or_else(|e| {
        panic!(
            "sweep printed no JSON ({e}): {}",
            String::from_utf8_lossy(&sweep.stderr)
        )
    });
    let rows = json["results"].as_array().unwrap();
    assert_eq!(rows.len(), 48, "12 members × 4 providers");
    let mut states_seen = std::collections::BTreeSet::new();
    for m in &members {
        for item in m[3].split(',') {
            let (provider, st) = item.split_once('=').unwrap();
            states_seen.insert(format!("{provider}={st}"));
            let row = rows
                .iter()
                .find(|r| r["member"] == m[0].as_str() && r["provider"] == provider)
                .unwrap_or_else(|| panic!("no row for {} × {provider}", m[0]));
            let got = state(row);
            assert!(
                !matches!(got, "unreachable" | "error"),
                "{} × {provider} ({st}): {got}: {}",
                m[0],
                row["detail"]
            );
            assert_eq!(
                got == "not_installed",
                st == "not_installed",
                "{} × {provider} ({st}): {got}",
                m[0]
            );
            if st == "no_auth" {
                assert_eq!(got, "needs_auth", "{} × {provider}", m[0]);
            }
            if st == "oauth_valid" {
                assert_eq!(got, "ready", "{} × {provider}", m[0]);
            }
        }
    }
    // Twelve members cover every state of every provider (copilot has no expiry on disk).
    for p in ["gemini", "claude", "codex", "copilot"] {
        let mut expected = vec![
            "not_installed",
            "no_auth",
            "oauth_valid",
            "oauth_malformed",
            "env_key",
            "rejected_key",
            "shadowed",
            "vendor_unreachable",
        ];
        if p != "copilot" {
            expected.extend(["oauth_expiring", "oauth_refreshable", "oauth_expired"]);
        }
        if p == "codex" {
            expected.push("key_file");
        }
        for st in expected {
            assert!(
                states_seen.contains(&format!("{p}={st}")),
                "the lab lacks {p}={st}"
            );
        }
    }

    // Idempotent: the same containers, the same host keys.
    lab(&["up", "--members", "12", "--out", out_s]);
    assert_eq!(ids("container"), containers);
    assert_eq!(
        std::fs::read_to_string(out.join("known_hosts")).unwrap(),
        known_hosts
    );

    lab(&["down", "--out", out_s]);
    assert_eq!(ids("container"), Vec::<String>::new(), "containers left");
    assert_eq!(ids("network"), Vec::<String>::new(), "networks left");
    assert_eq!(ids("volume"), Vec::<String>::new(), "volumes left");
    lab(&["down", "--out", out_s]);
}

/// Without an engine, docker/lab says so plainly (no stack of docker errors) and fails.
#[test]
fn lab_without_an_engine_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(docker_support::repo().join("docker/lab"))
        .args(["up", "--out"])
        .arg(dir.path())
        .env(
            "DOCKER_HOST",
            "unix:///nonexistent/fleetauth-test/docker.sock",
        )
        .stdin(Stdio::null())
        .output()
        .expect("run docker/lab");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "lab up without an engine succeeded");
    assert!(
        err.contains("no Docker engine answers") || err.contains("docker command is not installed"),
        "unclear error: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line, got:\n{err}");
}
