//! Medians, ratios, the issue's targets, and the machine they were measured on, as Markdown
//! (`results.md`, pasted into BENCHMARKS.md) and JSON (`results.json`, every sample).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::measure::Usage;
use crate::tools::{Env, Scenario, Tool};

/// One tool run.
pub struct Sample {
    pub tool: Tool,
    pub round: usize,
    pub usage: Usage,
    /// CPU (s) the members' sshd (and everything they ran) spent during the run.
    pub sshd_cpu: f64,
    /// CPU (s) the rest of the machine spent meanwhile (busy time minus client, members and
    /// this bench process): other work on this shared machine.
    pub other_cpu: f64,
    /// CPU (s) this bench process spent meanwhile (RSS sampling, silent members' threads).
    pub bench_cpu: f64,
    /// CPU (s) the WAN proxy process spent meanwhile (0 without `--rtt`).
    pub proxy_cpu: f64,
    /// Members whose probe ran to its end, per the tool's own output.
    pub completed: usize,
    /// Every member connection had ended before and after the run.
    pub idle: bool,
}

impl Sample {
    pub fn line(&self, n: usize) -> String {
        let u = &self.usage;
        format!(
            "{:<16} wall {:>7.2} s  cpu {:>7.2} s  maxrss {:>6.1} MB  tree {:>7.1} MB  sshd {:>7.2} s  bench {:>5.2} s  proxy {:>5.2} s  other {:>5.2} s  done {}/{}{}{}",
            self.tool.id(),
            u.wall.as_secs_f64(),
            u.cpu().as_secs_f64(),
            u.maxrss_kb as f64 / 1024.0,
            u.tree_rss_kb as f64 / 1024.0,
            self.sshd_cpu,
            self.bench_cpu,
            self.proxy_cpu,
            self.other_cpu,
            self.completed,
            n,
            if u.killed { "  KILLED" } else { "" },
            if self.idle {
                ""
            } else {
                "  (members not idle)"
            },
        )
    }
}

/// Medians over a tool's rounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub wall: f64,
    pub wall_min: f64,
    pub wall_max: f64,
    pub cpu: f64,
    pub maxrss_mb: f64,
    pub tree_mb: f64,
    pub sshd: f64,
    pub other: f64,
    pub proxy: f64,
    pub completed_min: usize,
    pub rounds: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub struct ScenarioResult {
    pub name: String,
    pub n: usize,
    pub expected: usize,
    pub deadline: Duration,
    pub tools: Vec<Tool>,
    pub samples: Vec<Sample>,
    /// The round-trip time the WAN proxy added; None: loopback.
    pub rtt: Option<Duration>,
}

impl ScenarioResult {
    pub fn new(s: &Scenario, samples: Vec<Sample>) -> ScenarioResult {
        ScenarioResult {
            name: s.name.clone(),
            n: s.n(),
            expected: s.expected,
            deadline: s.deadline,
            tools: s.tools.clone(),
            samples,
            rtt: s.rtt,
        }
    }

    pub fn hung(&self) -> usize {
        self.n - self.expected
    }

    /// `metric(a) / metric(b)` round by round (the two ran minutes apart, under the same load).
    pub fn paired(&self, a: Tool, b: Tool, metric: fn(&Sample) -> f64) -> Vec<f64> {
        let mut out = Vec::new();
        for x in self.samples.iter().filter(|s| s.tool == a) {
            if let Some(y) = self
                .samples
                .iter()
                .find(|s| s.tool == b && s.round == x.round)
                && metric(y) > 0.0
            {
                out.push(metric(x) / metric(y));
            }
        }
        out
    }

    pub fn summary(&self, tool: Tool) -> Option<Summary> {
        let s: Vec<&Sample> = self.samples.iter().filter(|s| s.tool == tool).collect();
        if s.is_empty() {
            return None;
        }
        let walls: Vec<f64> = s.iter().map(|x| x.usage.wall.as_secs_f64()).collect();
        Some(Summary {
            wall: median(walls.clone()),
            wall_min: walls.iter().copied().fold(f64::INFINITY, f64::min),
            wall_max: walls.iter().copied().fold(0.0, f64::max),
            cpu: median(s.iter().map(|x| x.usage.cpu().as_secs_f64()).collect()),
            maxrss_mb: median(
                s.iter()
                    .map(|x| x.usage.maxrss_kb as f64 / 1024.0)
                    .collect(),
            ),
            tree_mb: median(
                s.iter()
                    .map(|x| x.usage.tree_rss_kb as f64 / 1024.0)
                    .collect(),
            ),
            sshd: median(s.iter().map(|x| x.sshd_cpu).collect()),
            other: median(s.iter().map(|x| x.other_cpu).collect()),
            proxy: median(s.iter().map(|x| x.proxy_cpu).collect()),
            completed_min: s.iter().map(|x| x.completed).min().unwrap_or(0),
            rounds: s.len(),
        })
    }
}

/// Busy CPU time (s) of the whole machine so far, from /proc/stat.
pub fn busy_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    busy as f64 / ticks
}

/// The machine and every tool's version.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory: String,
    pub kernel: String,
    pub versions: Vec<(String, String)>,
    pub load_start: String,
    pub load_end: String,
    pub top_start: String,
    pub nofile: u64,
    pub startup: Vec<(usize, Duration)>,
    pub duration: Duration,
}

fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        }
        Err(e) => format!("({program}: {e})"),
    }
}

fn read_first(path: &str, key: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    pub fn collect(env: &Env) -> Machine {
        let py = env.venv.join("bin/python");
        let py = py.to_string_lossy();
        let pkg = |name: &str| {
            output_of(
                &py,
                &[
                    "-c",
                    &format!("import importlib.metadata as m; print(m.version('{name}'))"),
                ],
            )
        };
        let git = output_of(
            "git",
            &[
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "rev-parse",
                "--short",
                "HEAD",
            ],
        );
        let versions = vec![
            (
                "fleetauth".to_string(),
                format!(
                    "{} (release build, commit {git})",
                    output_of(&env.fleetauth.to_string_lossy(), &["--version"])
                ),
            ),
            ("rustc".to_string(), output_of("rustc", &["--version"])),
            ("OpenSSH client".to_string(), output_of("ssh", &["-V"])),
            (
                "OpenSSH server (members)".to_string(),
                output_of("dpkg-query", &["-W", "-f", "${Version}", "openssh-server"]),
            ),
            ("xargs".to_string(), output_of("xargs", &["--version"])),
            ("Python".to_string(), output_of(&py, &["--version"])),
            ("parallel-ssh".to_string(), pkg("parallel-ssh")),
            (
                "ssh2-python (libssh2)".to_string(),
                format!(
                    "{} (libssh2 {})",
                    pkg("ssh2-python"),
                    output_of(
                        &py,
                        &["-c", "import ssh2.utils as u; print(u.version().decode())"]
                    )
                ),
            ),
            ("ansible-core".to_string(), pkg("ansible-core")),
        ];
        Machine {
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: read_first("/proc/cpuinfo", "model name"),
            memory: read_first("/proc/meminfo", "MemTotal"),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            versions,
            load_start: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
            load_end: String::new(),
            top_start: top_processes(),
            nofile: 0,
            startup: Vec::new(),
            duration: Duration::ZERO,
        }
    }

    pub fn finish(&mut self, duration: Duration) {
        self.duration = duration;
        self.load_end = std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string();
    }

    pub fn summary(&self) -> String {
        format!(
            "{} × {} ({}), load {}",
            self.cpus, self.cpu_model, self.memory, self.load_start
        )
    }
}

/// The processes that used the most CPU over their lifetime, for "what else was running".
fn top_processes() -> String {
    let out = Command::new("ps")
        .args(["-eo", "pcpu,rss,etime,comm", "--sort=-pcpu"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines().take(9).collect::<Vec<_>>().join("\n")
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn rounds(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn markdown(m: &Machine, results: &[ScenarioResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Machine\n");
    let _ = writeln!(
        s,
        "- {} CPUs: {}; memory {}; Linux {}; RLIMIT_NOFILE {}",
        m.cpus, m.cpu_model, m.memory, m.kernel, m.nofile
    );
    let _ = writeln!(
        s,
        "- load average at start `{}`, at end `{}`; the run took {:.0} s",
        m.load_start,
        m.load_end,
        m.duration.as_secs_f64()
    );
    for (n, took) in &m.startup {
        let _ = writeln!(
            s,
            "- starting members up to {n} took {:.1} s",
            took.as_secs_f64()
        );
    }
    let _ = writeln!(
        s,
        "- busiest processes at start (`ps --sort=-pcpu`, lifetime averages):\n\n```\n{}\n```\n",
        m.top_start
    );
    let _ = writeln!(s, "### Versions\n");
    for (k, v) in &m.versions {
        let _ = writeln!(s, "- {k}: {v}");
    }
    let _ = writeln!(s);
    for r in results {
        scenario_table(&mut s, m, r);
    }
    round_trips(&mut s, results);
    targets(&mut s, results);
    s
}

/// Per size with runs at two or more RTTs: how much each tool's wall time grows per added
/// millisecond of RTT, i.e. how many round trips lie on its critical path. For N = 1 that is
/// the round trips one member costs (process start-up and the members' CPU are the same at
/// both RTTs and cancel); for a fleet, the round trips its slowest chain of members waits for.
/// Each round's two runs are paired (they ran minutes apart under the same load).
fn round_trips(s: &mut String, results: &[ScenarioResult]) {
    let mut sizes: Vec<usize> = results
        .iter()
        .filter(|r| r.rtt.is_some())
        .map(|r| r.n)
        .collect();
    sizes.dedup();
    for n in sizes {
        let mut wan: Vec<&ScenarioResult> = results
            .iter()
            .filter(|r| r.n == n && r.rtt.is_some())
            .collect();
        wan.sort_by_key(|r| r.rtt);
        for pair in wan.windows(2) {
            let (lo, hi) = (pair[0], pair[1]);
            let (a, b) = (lo.rtt.unwrap(), hi.rtt.unwrap());
            let delta = (b - a).as_secs_f64();
            if delta <= 0.0 {
                continue;
            }
            let what = if n == 1 {
                "round trips per member"
            } else {
                "round trips on the fleet's critical path"
            };
            let _ = writeln!(
                s,
                "### N = {n}: {what}, from RTT {} ms and {} ms\n",
                a.as_millis(),
                b.as_millis()
            );
            let _ = writeln!(
                s,
                "| tool | wall s at {} ms, median (min) | wall s at {} ms, median (min) | (wall₂ − wall₁) ÷ ΔRTT, median of rounds | round by round | from the fastest run at each RTT |",
                a.as_millis(),
                b.as_millis()
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|");
            for &tool in &lo.tools {
                let (Some(x), Some(y)) = (lo.summary(tool), hi.summary(tool)) else {
                    continue;
                };
                let slopes = paired_slopes(lo, hi, tool, delta);
                let _ = writeln!(
                    s,
                    "| {} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.1} | {} | {:.1} |",
                    tool.describe(),
                    x.wall,
                    x.wall_min,
                    y.wall,
                    y.wall_min,
                    median(slopes.clone()),
                    slopes
                        .iter()
                        .map(|v| format!("{v:.1}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    (y.wall_min - x.wall_min) / delta
                );
            }
            let _ = writeln!(
                s,
                "\nOther work on the machine only ever adds time, so the fastest runs are the \
                 least disturbed; the spread of the round-by-round figures is the noise.\n"
            );
        }
    }
}

/// (wall at the higher RTT − wall at the lower) ÷ ΔRTT, per round.
fn paired_slopes(lo: &ScenarioResult, hi: &ScenarioResult, tool: Tool, delta: f64) -> Vec<f64> {
    lo.samples
        .iter()
        .filter(|x| x.tool == tool)
        .filter_map(|x| {
            let y = hi
                .samples
                .iter()
                .find(|y| y.tool == tool && y.round == x.round)?;
            Some((y.usage.wall.as_secs_f64() - x.usage.wall.as_secs_f64()) / delta)
        })
        .collect()
}

fn scenario_table(s: &mut String, m: &Machine, r: &ScenarioResult) {
    let hung = if r.hung() > 0 {
        format!(", {} of them hung (accept TCP, never answer)", r.hung())
    } else {
        String::new()
    };
    let rounds = r.summary(r.tools[0]).map(|x| x.rounds).unwrap_or(0);
    let rtt = match r.rtt {
        Some(rtt) => format!(", RTT {} ms (delaying proxy)", rtt.as_millis()),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "### N = {}{hung}{rtt} — `{}`, {} rounds, member deadline {} s\n",
        r.n,
        r.name,
        rounds,
        r.deadline.as_secs()
    );
    let _ = writeln!(
        s,
        "| tool | wall s, median (min–max) | wall ÷ fleetauth | client CPU s | client CPU ms/member | largest process MB (ru_maxrss) | process tree MB (sampled) | members' sshd CPU s | sshd CPU ms/member | sshd floor s (÷{} cores) | wall ÷ floor | other CPU s | members done |",
        m.cpus
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let base = r
        .summary(Tool::Fleetauth)
        .map(|x| x.wall)
        .unwrap_or(f64::NAN);
    let answering = r.expected.max(1) as f64;
    for &tool in &r.tools {
        let Some(x) = r.summary(tool) else { continue };
        let floor = x.sshd / m.cpus as f64;
        let _ = writeln!(
            s,
            "| {} | {:.2} ({:.2}–{:.2}) | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.2} | {}/{} |",
            tool.describe(),
            x.wall,
            x.wall_min,
            x.wall_max,
            ratio(x.wall, base),
            x.cpu,
            x.cpu * 1000.0 / r.n as f64,
            x.maxrss_mb,
            x.tree_mb,
            x.sshd,
            x.sshd * 1000.0 / answering,
            floor,
            ratio(x.wall, floor),
            x.other,
            x.completed_min,
            r.expected,
        );
    }
    if r.rtt.is_some() {
        let proxy: Vec<String> = r
            .tools
            .iter()
            .filter_map(|&t| Some(format!("{} {:.2}", t.id(), r.summary(t)?.proxy)))
            .collect();
        let _ = writeln!(
            s,
            "\nThe proxy's own CPU per run, median s (in no column above; *other CPU* excludes it): {}.",
            proxy.join(", ")
        );
    }
    let _ = writeln!(s);
}

fn targets(s: &mut String, results: &[ScenarioResult]) {
    let _ = writeln!(s, "### Targets (issues 5 and 14), measured in this run\n");
    let _ = writeln!(s, "| target | measured | met |");
    let _ = writeln!(s, "|---|---|---|");
    let mut row = |what: String, measured: String, met: Option<bool>| {
        let verdict = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(s, "| {what} | {measured} | {verdict} |");
    };
    wan_targets(&mut row, results);
    for r in results.iter().filter(|r| r.rtt.is_none()) {
        let Some(f) = r.summary(Tool::Fleetauth) else {
            continue;
        };
        let other = |t: Tool| r.summary(t);
        if r.hung() > 0 {
            let limit = r.deadline.as_secs_f64() + 1.0;
            row(
                format!(
                    "N = {}, {} hung: fleetauth wall ≤ deadline + 1 s = {limit:.0} s",
                    r.n,
                    r.hung()
                ),
                format!("{:.2} s (max {:.2} s)", f.wall, f.wall_max),
                Some(f.wall <= limit),
            );
            continue;
        }
        let wall_target = |s: &mut dyn FnMut(String, String, Option<bool>), t: Tool, k: f64| {
            if let Some(o) = other(t) {
                s(
                    format!("N = {}: fleetauth wall ≤ {k} × {}", r.n, t.id()),
                    format!(
                        "{:.2} s vs {:.2} s = {} × (round by round: {})",
                        f.wall,
                        o.wall,
                        ratio(f.wall, o.wall),
                        rounds(&r.paired(Tool::Fleetauth, t, |x| x.usage.wall.as_secs_f64()))
                    ),
                    Some(f.wall <= k * o.wall),
                );
            }
        };
        if r.n == 200 {
            wall_target(&mut row, Tool::SshCurve, 0.8);
            wall_target(&mut row, Tool::Pssh, 0.7);
        }
        if r.n == 1000 {
            wall_target(&mut row, Tool::SshCurve, 0.6);
        }
        let per = f.cpu * 1000.0 / r.n as f64;
        row(
            format!("N = {}: fleetauth client CPU ≤ 2 ms/member", r.n),
            format!("{per:.2} ms/member"),
            Some(per <= 2.0),
        );
        let mine = f.sshd * 1000.0 / r.expected.max(1) as f64;
        for t in [Tool::SshCurve, Tool::SshDefault] {
            if let Some(o) = other(t) {
                let theirs = o.sshd * 1000.0 / r.expected.max(1) as f64;
                row(
                    format!(
                        "N = {}: members' sshd CPU/member ≤ OpenSSH single command ({})",
                        r.n,
                        t.id()
                    ),
                    format!(
                        "{mine:.2} vs {theirs:.2} ms/member (ratio round by round: {})",
                        rounds(&r.paired(Tool::Fleetauth, t, |x| x.sshd_cpu))
                    ),
                    Some(mine <= theirs),
                );
            }
        }
        if r.n == 1000 {
            let peak = f.tree_mb.max(f.maxrss_mb);
            row(
                "N = 1000: fleetauth peak RSS ≤ 64 MB".into(),
                format!("{peak:.1} MB"),
                Some(peak <= 64.0),
            );
        }
    }
    let _ = writeln!(s);
}

/// Issue 14's WAN targets: ≤ 5 round trips per member (N = 1), and at N = 200 fleetauth's
/// wall ≤ 0.7 × OpenSSH-curve25519's at RTT 100 ms, ≤ 0.5 × at 300 ms.
fn wan_targets(row: &mut dyn FnMut(String, String, Option<bool>), results: &[ScenarioResult]) {
    let mut ones: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| r.n == 1 && r.rtt.is_some())
        .collect();
    ones.sort_by_key(|r| r.rtt);
    if let (Some(lo), Some(hi)) = (ones.first(), ones.last())
        && hi.rtt > lo.rtt
    {
        let delta = (hi.rtt.unwrap() - lo.rtt.unwrap()).as_secs_f64();
        let mine = median(paired_slopes(lo, hi, Tool::Fleetauth, delta));
        let theirs = median(paired_slopes(lo, hi, Tool::SshCurve, delta));
        if mine.is_finite() {
            row(
                "round trips per member for a sweep ≤ 5 (N = 1, proxy: TCP's own handshake not counted)".into(),
                format!("{mine:.1} (ssh-curve25519 {theirs:.1})"),
                Some(mine <= 5.0),
            );
        }
    }
    for r in results.iter().filter(|r| r.n == 200) {
        let k = match r.rtt.map(|d| d.as_millis()) {
            Some(100) => 0.7,
            Some(300) => 0.5,
            _ => continue,
        };
        let (Some(f), Some(o)) = (r.summary(Tool::Fleetauth), r.summary(Tool::SshCurve)) else {
            continue;
        };
        row(
            format!(
                "RTT {} ms, N = 200: fleetauth wall ≤ {k} × ssh-curve25519",
                r.rtt.unwrap().as_millis()
            ),
            format!(
                "{:.2} s vs {:.2} s = {} × (round by round: {})",
                f.wall,
                o.wall,
                ratio(f.wall, o.wall),
                rounds(&r.paired(Tool::Fleetauth, Tool::SshCurve, |x| {
                    x.usage.wall.as_secs_f64()
                }))
            ),
            Some(f.wall <= k * o.wall),
        );
    }
}

/// Write results.md and results.json under `dir`.
pub fn write(dir: &Path, m: &Machine, results: &[ScenarioResult]) {
    std::fs::write(dir.join("results.md"), markdown(m, results)).expect("write results.md");
    let samples: Vec<_> = results
        .iter()
        .flat_map(|r| {
            r.samples.iter().map(move |x| {
                json!({
                    "scenario": r.name,
                    "n": r.n,
                    "hung": r.hung(),
                    "tool": x.tool.id(),
                    "round": x.round,
                    "wall_s": x.usage.wall.as_secs_f64(),
                    "user_s": x.usage.user.as_secs_f64(),
                    "sys_s": x.usage.sys.as_secs_f64(),
                    "maxrss_kb": x.usage.maxrss_kb,
                    "tree_rss_kb": x.usage.tree_rss_kb,
                    "exit": x.usage.exit,
                    "killed": x.usage.killed,
                    "sshd_cpu_s": x.sshd_cpu,
                    "other_cpu_s": x.other_cpu,
                    "bench_cpu_s": x.bench_cpu,
                    "proxy_cpu_s": x.proxy_cpu,
                    "rtt_ms": r.rtt.map(|d| d.as_millis() as u64),
                    "completed": x.completed,
                    "expected": r.expected,
                    "members_idle": x.idle,
                })
            })
        })
        .collect();
    let doc = json!({
        "machine": {
            "cpus": m.cpus,
            "cpu_model": m.cpu_model,
            "memory": m.memory,
            "kernel": m.kernel,
            "load_start": m.load_start,
            "load_end": m.load_end,
            "versions": m.versions.iter().map(|(k, v)| json!({"tool": k, "version": v})).collect::<Vec<_>>(),
        },
        "samples": samples,
    });
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .expect("write results.json");
}
