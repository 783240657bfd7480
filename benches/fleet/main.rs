//! `cargo bench --bench fleet` (via `scripts/bench`): fleetauth against OpenSSH fan-out,
//! parallel-ssh and Ansible, on the same real members, doing the same work.
//!
//! Why a plain binary and not a statistics harness (criterion & co.): one sample here is a
//! whole fleet run of seconds to minutes that costs the members real CPU, and the figures that
//! matter are ratios between tools measured side by side on a shared machine. So the bench
//! interleaves the tools (A B C D … A B C D …) for a few rounds, which spreads whatever else
//! the machine does over all of them, and reports medians with their spread. It prints
//! figures and asserts nothing about time (the brief's "no timed assertions").
//!
//! The members are the integration tests' members (tests/support: one `sshd` per member on its
//! own 127.x address with its own host key, HOME and stub CLIs); see [`members`]. What each
//! tool runs is in [`tools`], how a run is measured in [`measure`], the tables in [`report`].
//!
//! `cargo test --all-targets` also builds and runs this binary (without `--bench`): it then
//! only says so and exits, so the test suite never starts a thousand sshd.

#[path = "../../tests/support/mod.rs"]
mod support;

mod measure;
mod members;
mod proxy;
mod report;
mod tools;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use members::Fleet;
use report::{Machine, Sample, ScenarioResult};
use tools::{Env, Scenario, Tool};

/// The bench's own deadline for one tool run; a run that hits it is reported as killed.
const RUN_LIMIT: Duration = Duration::from_secs(900);
/// Longest wait for the members' connections to end after a run.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

struct Args {
    sizes: Vec<usize>,
    rounds: usize,
    tools: Vec<Tool>,
    /// Sizes that also get the fleetauth-only runs (--deep, provision --check).
    extras_at: Vec<usize>,
    /// Sizes that also get a run with 10 % of the members hung.
    hung_at: Vec<usize>,
    deadline: Duration,
    hung_deadline: Duration,
    out: PathBuf,
    /// `--rtt 50,100`: instead of the loopback scenarios, run every size through the delaying
    /// proxy at each of these round-trip times (ms), interleaved round by round.
    rtts: Vec<u64>,
    /// `--trace`: the proxy logs every chunk to OUT/proxy-trace.log.
    trace: bool,
    four_providers: bool,
    node_stubs: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: cargo bench --bench fleet -- [--sizes 200,1000] [--rounds 3] \
         [--tools fleetauth,ssh-default,ssh-curve25519,parallel-ssh,ansible] \
         [--extras-at 200] [--hung-at 200] [--deadline 10] [--hung-deadline 5] [--out target/bench] \
         [--rtt MS,MS [--trace]] [--four-providers] [--node-stubs]"
    );
    std::process::exit(2)
}

fn list<T: std::str::FromStr>(v: &str) -> Vec<T> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
        .collect()
}

fn parse_args(raw: &[String]) -> Args {
    let mut a = Args {
        sizes: vec![200, 1000],
        rounds: 3,
        tools: vec![
            Tool::Fleetauth,
            Tool::SshDefault,
            Tool::SshCurve,
            Tool::Pssh,
            Tool::Ansible,
        ],
        extras_at: vec![200],
        hung_at: vec![200],
        deadline: Duration::from_secs(10),
        hung_deadline: Duration::from_secs(5),
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench"),
        rtts: Vec::new(),
        trace: false,
        four_providers: false,
        node_stubs: false,
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--bench" => {}
            "--sizes" => a.sizes = list(&value()),
            "--rounds" => a.rounds = value().parse().unwrap_or_else(|_| usage()),
            "--tools" => {
                a.tools = value()
                    .split(',')
                    .map(|t| Tool::parse(t).unwrap_or_else(|| usage()))
                    .collect()
            }
            "--extras-at" => a.extras_at = list(&value()),
            "--hung-at" => a.hung_at = list(&value()),
            "--deadline" => a.deadline = Duration::from_secs(value().parse().unwrap_or(10)),
            "--hung-deadline" => {
                a.hung_deadline = Duration::from_secs(value().parse().unwrap_or(5))
            }
            "--out" => a.out = PathBuf::from(value()),
            "--rtt" => a.rtts = list(&value()),
            "--trace" => a.trace = true,
            "--four-providers" => a.four_providers = true,
            "--node-stubs" => a.node_stubs = true,
            _ => usage(),
        }
    }
    a.sizes.sort_unstable();
    // Tools run from each scenario's directory: every path handed to them must be absolute.
    if a.out.is_relative() {
        a.out = std::env::current_dir().expect("current dir").join(&a.out);
    }
    a
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--proxy") {
        let trace =
            (raw.get(2).map(String::as_str) == Some("--trace")).then(|| PathBuf::from(&raw[3]));
        proxy::serve(std::path::Path::new(&raw[1]), trace);
    }
    if !raw.iter().any(|a| a == "--bench") {
        println!("fleet bench: not run (it starts up to 1000 sshd); run scripts/bench");
        return;
    }
    let mut args = parse_args(&raw);
    if std::env::var_os("FLEETAUTH_BENCH_ALT").is_some()
        && !args.tools.contains(&Tool::FleetauthAlt)
    {
        args.tools.insert(1, Tool::FleetauthAlt);
    }
    members::configure(args.four_providers, args.node_stubs);
    let nofile = measure::raise_nofile();
    let env = Env {
        fleetauth: PathBuf::from(env!("CARGO_BIN_EXE_fleetauth")),
        venv: std::env::var_os("FLEETAUTH_BENCH_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs_home().join(".cache/fleetauth-bench/venv")),
        pssh_driver: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/fleet/pssh_probe.py"),
    };
    let uses_python = args
        .tools
        .iter()
        .any(|t| matches!(t, Tool::Pssh | Tool::Ansible));
    if uses_python && !env.venv.join("bin/ansible").exists() {
        eprintln!(
            "no parallel-ssh/ansible-core venv at {} (scripts/bench creates it; or set FLEETAUTH_BENCH_VENV)",
            env.venv.display()
        );
        std::process::exit(2);
    }
    std::fs::create_dir_all(&args.out).expect("create the output dir");
    let mut machine = Machine::collect(&env);
    machine.nofile = nofile;
    eprintln!("{}", machine.summary());

    let started = Instant::now();
    let mut fleet = Fleet::new();
    let mut results = Vec::new();
    for &n in &args.sizes {
        let took = fleet.grow(n);
        eprintln!(
            "started {} members in {:.1} s (total {})",
            n,
            took.as_secs_f64(),
            fleet.len()
        );
        machine.startup.push((n, took));
        if !args.rtts.is_empty() {
            results.extend(run_wan(&fleet, &env, &args, n));
            machine.finish(started.elapsed());
            report::write(&args.out, &machine, &results);
            continue;
        }
        let mut tools = args.tools.clone();
        if args.extras_at.contains(&n) {
            tools.extend([
                Tool::FleetauthDeep,
                Tool::ProvisionCheck,
                Tool::SshCurveBare,
            ]);
        }
        let scenario = Scenario::prepare(
            &fleet.lab,
            &args.out,
            &format!("n{n}"),
            fleet.targets(n),
            n,
            args.deadline,
            tools,
            fleet.sshd_pids(n),
        );
        results.push(run_scenario(&fleet, &env, &scenario, args.rounds));
        if args.hung_at.contains(&n) {
            let targets = fleet.targets_with_hung(n);
            let hung = n / 10;
            let scenario = Scenario::prepare(
                &fleet.lab,
                &args.out,
                &format!("n{n}-hung"),
                targets,
                n - hung,
                args.hung_deadline,
                args.tools.clone(),
                fleet.sshd_pids(n - hung),
            );
            results.push(run_scenario(&fleet, &env, &scenario, args.rounds));
        }
        // Write what we have after each size: a late failure keeps the earlier figures.
        machine.finish(started.elapsed());
        report::write(&args.out, &machine, &results);
    }
    let md = report::markdown(&machine, &results);
    println!("{md}");
    eprintln!(
        "wrote {} and {}",
        args.out.join("results.md").display(),
        args.out.join("results.json").display()
    );
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn run_scenario(fleet: &Fleet, env: &Env, scenario: &Scenario, rounds: usize) -> ScenarioResult {
    let mut samples = Vec::new();
    for round in 1..=rounds {
        for &tool in &scenario.tools {
            samples.push(run_one(fleet, env, scenario, tool, round, None));
        }
    }
    ScenarioResult::new(scenario, samples)
}

/// One run of `tool`, measured. `proxy`: the WAN proxy's pid, whose CPU is measured apart.
fn run_one(
    fleet: &Fleet,
    env: &Env,
    scenario: &Scenario,
    tool: Tool,
    round: usize,
    proxy: Option<i32>,
) -> Sample {
    let pids = &scenario.sshd_pids;
    let proxy_cpu = || proxy.map(measure::own_cpu).unwrap_or(0.0);
    let idle_before = measure::wait_idle(pids, IDLE_LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    let sshd0 = measure::sshd_cpu(pids);
    let busy0 = report::busy_cpu();
    let self0 = measure::self_cpu();
    let proxy0 = proxy_cpu();
    let usage = measure::run(scenario.command(&fleet.lab, env, tool, round), RUN_LIMIT);
    let idle_after = measure::wait_idle(pids, IDLE_LIMIT);
    let sshd = measure::sshd_cpu(pids) - sshd0;
    let busy = report::busy_cpu() - busy0;
    let bench_cpu = measure::self_cpu() - self0;
    let proxy_cpu = proxy_cpu() - proxy0;
    let completed = scenario.completed(tool, round);
    let sample = Sample {
        tool,
        round,
        other_cpu: (busy - sshd - bench_cpu - proxy_cpu - usage.cpu().as_secs_f64()).max(0.0),
        bench_cpu,
        proxy_cpu,
        usage,
        sshd_cpu: sshd,
        completed,
        idle: idle_before && idle_after,
    };
    eprintln!("[{} r{round}] {}", scenario.name, sample.line(scenario.n()));
    sample
}

/// `--rtt`: the first `n` members behind the delaying proxy, once per RTT, every tool at every
/// RTT interleaved round by round (round 1: all tools at the first RTT, then at the second, …),
/// so the wall-time difference between two RTTs is measured under the same load.
fn run_wan(fleet: &Fleet, env: &Env, args: &Args, n: usize) -> Vec<ScenarioResult> {
    let mut tools = args.tools.clone();
    if args.extras_at.contains(&n) {
        tools.extend([
            Tool::FleetauthDeep,
            Tool::ProvisionCheck,
            Tool::SshCurveBare,
        ]);
    }
    let mut routes = Vec::new();
    let mut scenarios = Vec::new();
    let mut trusted = String::new();
    let known = std::fs::read_to_string(fleet.lab.known_hosts()).expect("read known_hosts");
    for &ms in &args.rtts {
        let one_way = Duration::from_micros(ms * 500);
        let mut targets = Vec::new();
        for member in fleet.targets(n) {
            // Its own loopback address, reserved like a member's, holding the proxy listener.
            let front = fleet.lab.down_member(&format!("rtt{ms}-{}", member.name));
            let key = known
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{} ", member.addr)))
                .unwrap_or_else(|| panic!("no known_hosts line for {}", member.addr));
            trusted.push_str(&format!("{} {key}\n", front.addr()));
            routes.push(proxy::Route {
                listen: (front.addr(), front.port()).into(),
                upstream: (member.addr, member.port).into(),
                one_way,
            });
            targets.push(members::Target {
                name: member.name.clone(),
                addr: front.addr(),
                port: front.port(),
            });
        }
        let mut scenario = Scenario::prepare(
            &fleet.lab,
            &args.out,
            &format!("n{n}-rtt{ms}"),
            targets,
            n,
            args.deadline,
            tools.clone(),
            fleet.sshd_pids(n),
        );
        scenario.rtt = Some(Duration::from_millis(ms));
        scenarios.push(scenario);
    }
    // The proxies present the members' own host keys: strict checking stays on.
    std::fs::OpenOptions::new()
        .append(true)
        .open(fleet.lab.known_hosts())
        .and_then(|mut f| std::io::Write::write_all(&mut f, trusted.as_bytes()))
        .expect("append the proxies to known_hosts");
    let trace = args
        .trace
        .then(|| args.out.join(format!("proxy-trace-n{n}.log")));
    let proxy = proxy::Proxy::start(
        &routes,
        &args.out.join(format!("proxy-n{n}.conf")),
        trace.as_deref(),
    );
    let mut samples: Vec<Vec<Sample>> = scenarios.iter().map(|_| Vec::new()).collect();
    for round in 1..=args.rounds {
        for (i, scenario) in scenarios.iter().enumerate() {
            for &tool in &scenario.tools {
                let sample = run_one(fleet, env, scenario, tool, round, Some(proxy.pid()));
                samples[i].push(sample);
            }
        }
    }
    drop(proxy);
    scenarios
        .iter()
        .zip(samples)
        .map(|(s, x)| ScenarioResult::new(s, x))
        .collect()
}
