//! Everything fleetauth runs on a member, and how its answers come back.
//!
//! Member-side logic lives in real POSIX `sh` files beside this module (`prelude.sh`, `probe.sh`,
//! `envfile.sh`, the per-command `sweep.sh`, `provision.sh`, `run.sh`) and one awk program
//! (`envfile.awk`), included at build time, `shellcheck`-clean and tested under dash, bash and
//! busybox sh (awk: mawk, gawk, busybox). Rust's part is small and typed:
//!
//! - **A header of data.** [`Script`] prepends variable assignments — every value quoted with
//!   [`crate::shell::quote`] — and nothing else: the run's frame marker, the exit statuses of
//!   [`ExitStatus`] (one enum, injected; no literal status on either side), paths, names, provider
//!   definitions. The scripts themselves never change with the data.
//! - **A command line any login shell parses alike.** sshd hands the command line to the member's
//!   login shell — sh, bash, zsh, fish, tcsh or busybox ash — so it is a few plain words:
//!   `sh -s` when the script is all of stdin, or a fixed bootstrap that reads exactly the script's
//!   bytes from stdin and leaves the rest (a key, the user's input, the client's verdict) to the
//!   script ([`Script::command`]). All logic runs in `/bin/sh`.
//! - **Framed answers.** A member's shell start-up may print anything (a `~/.bashrc` echo, a
//!   MOTD) on stdout or stderr. Scripts answer in records `@@FA<nonce>\tPROVIDER\tFIELD\tVALUE`,
//!   where the nonce is fresh per script and travels only on stdin, so nothing outside the script
//!   can forge a record; every other line is ignored ([`records`]).

use std::fmt::Write as _;
use std::sync::LazyLock;

use crate::shell::quote;

/// A member-side text as it is sent: read at build time, then [`strip`]ped once.
macro_rules! member_text {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub static $name: LazyLock<String> = LazyLock::new(|| strip(include_str!($file)));
    };
}

member_text!(PRELUDE, "prelude.sh");
member_text!(PROBE, "probe.sh");
member_text!(ENVFILE, "envfile.sh");
member_text!(SWEEP_MAIN, "sweep.sh");
member_text!(PROVISION_MAIN, "provision.sh");
member_text!(RUN_MAIN, "run.sh");
member_text!(LOGIN_MAIN, "login.sh");
member_text!(ENVFILE_AWK, "envfile.awk");
member_text!(JSON_AWK, "json.awk");

/// A script or awk program without its comment lines and indentation, which are for us: the
/// probe is 40 % smaller, and every byte of it crosses the network to every member (at the
/// start of a connection, where TCP sends little per round trip). Lines are otherwise kept as
/// they are, so line numbers in a member's error differ but its text does not; neither
/// language is changed by it, as our scripts hold no here-document or multi-line string (the
/// member-side tests run these stripped texts, under every shell and awk).
pub fn strip(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The longest script [`Script::carried_command`] puts on a command line: Linux takes at most
/// 128 KiB in one argument (`MAX_ARG_STRLEN`), and a long line costs the network more than a
/// round trip would save.
pub const CARRY_MAX: usize = 64 * 1024;

/// The bytes a carried script cannot hold raw, and the `printf %b` escapes that stand for them
/// ([`Script::carried_command`]; [`Script::carried_text`] reads them back).
const CARRY_ESCAPES: [(u8, &str); 4] = [
    (b'\n', "\\n"),
    (b'\'', "\\0047"),
    (b'!', "\\0041"),
    (b'\\', "\\0134"),
];

/// What [`Script::carried_command`] does with each byte: 0 copies it (printable ASCII, tab), k > 0
/// writes `CARRY_ESCAPES[k - 1]`'s escape, [`CARRY_REFUSED`] sends the script on stdin instead.
/// A table, not a search of `CARRY_ESCAPES` per byte: every probe's ~35 KB pass through it.
const CARRY_CLASS: [u8; 256] = {
    let mut class = [CARRY_REFUSED; 256];
    let mut b = 0x20;
    while b < 0x7f {
        class[b] = 0;
        b += 1;
    }
    class[b'\t' as usize] = 0;
    let mut k = 0;
    while k < CARRY_ESCAPES.len() {
        class[CARRY_ESCAPES[k].0 as usize] = k as u8 + 1;
        k += 1;
    }
    class
};
const CARRY_REFUSED: u8 = u8::MAX;

/// The shell variables a provider's definition (`probe::provider_definition`, `fa_def_N`) sets on
/// the member. The probe reads a provider's environment variables by name in the same shell, so
/// no provider may name one of its variables after these, nor `fa_*`/`FA_*` (the member scripts'
/// own): [`is_reserved_name`].
pub(crate) const DEFINITION_VARS: [&str; 21] = [
    "P",
    "B",
    "NPM",
    "NPKG",
    "DIRS",
    "VARGS",
    "HAS_STATUS",
    "SARGS",
    "DFILES",
    "DPFILES",
    "DKCS",
    "ENVS",
    "PREFIXES",
    "HVAR",
    "HDEF",
    "FILES",
    "PFILES",
    "KCS",
    "PENV",
    "PARGS",
    "PTO",
];

/// Whether `name` is taken by the scripts fleetauth runs on members (see [`DEFINITION_VARS`]): the
/// provider loader refuses it as an environment variable's name.
pub fn is_reserved_name(name: &str) -> bool {
    name.starts_with("fa_") || name.starts_with("FA_") || DEFINITION_VARS.contains(&name)
}

/// How long a provisioning transaction waits for another provisioner's lock on the same file.
pub const LOCK_TIMEOUT_SECS: u32 = 30;

/// Exit statuses of the member-side scripts. Their values reach the scripts as `FA_ST_<NAME>`
/// variables (and the awk program as `st_<name>`), so each is written once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Invoked wrongly (a fleetauth bug).
    Usage,
    /// Stdin did not carry what the script expected.
    BadInput,
    /// The target is a symbolic link.
    Symlink,
    /// The target is owned by another user.
    ForeignOwner,
    /// The target exists but is not a regular file.
    NotRegular,
    /// Another provisioner held the lock.
    LockTimeout,
    /// Creating, writing, syncing or renaming failed.
    Io,
    /// The directory written in is not ours, or others may write in it.
    UnsafeDir,
    /// The target (or the env file to source) may be written by others.
    UnsafeFile,
    /// A managed name is assigned on a line fleetauth will not rewrite.
    Shadowed,
}

impl ExitStatus {
    pub const ALL: [ExitStatus; 10] = [
        ExitStatus::Usage,
        ExitStatus::BadInput,
        ExitStatus::Symlink,
        ExitStatus::ForeignOwner,
        ExitStatus::NotRegular,
        ExitStatus::LockTimeout,
        ExitStatus::Io,
        ExitStatus::UnsafeDir,
        ExitStatus::UnsafeFile,
        ExitStatus::Shadowed,
    ];

    /// The status itself: sysexits-style, clear of the shell's own 1, 2, 126–165.
    pub fn code(self) -> u32 {
        64 + ExitStatus::ALL.iter().position(|s| *s == self).unwrap_or(0) as u32
    }

    /// The variable's suffix in the scripts (`FA_ST_BAD_INPUT`).
    pub fn name(self) -> &'static str {
        match self {
            ExitStatus::Usage => "USAGE",
            ExitStatus::BadInput => "BAD_INPUT",
            ExitStatus::Symlink => "SYMLINK",
            ExitStatus::ForeignOwner => "FOREIGN_OWNER",
            ExitStatus::NotRegular => "NOT_REGULAR",
            ExitStatus::LockTimeout => "LOCK_TIMEOUT",
            ExitStatus::Io => "IO",
            ExitStatus::UnsafeDir => "UNSAFE_DIR",
            ExitStatus::UnsafeFile => "UNSAFE_FILE",
            ExitStatus::Shadowed => "SHADOWED",
        }
    }

    pub fn from_code(code: u32) -> Option<ExitStatus> {
        ExitStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// A fresh per-script frame marker: 128 random bits, hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nonce(String);

impl Nonce {
    pub fn new() -> Nonce {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Nonce(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Nonce::new()
    }
}

/// One script for one member: a header of quoted data, the prelude, then the bodies.
#[derive(Debug, Clone)]
pub struct Script {
    nonce: Nonce,
    text: String,
}

impl Script {
    /// A script whose header carries the nonce and the exit statuses.
    pub fn new() -> Script {
        let nonce = Nonce::new();
        let mut text = String::with_capacity(16 * 1024);
        let _ = writeln!(text, "FA_NONCE={}", nonce.as_str());
        for st in ExitStatus::ALL {
            let _ = writeln!(text, "FA_ST_{}={}", st.name(), st.code());
        }
        let _ = writeln!(text, "FA_LOCK_TIMEOUT={LOCK_TIMEOUT_SECS}");
        Script { nonce, text }
    }

    /// `NAME=<value>`, the value quoted. `name` must be a shell identifier (a fleetauth constant).
    pub fn set(&mut self, name: &str, value: &str) -> &mut Script {
        debug_assert!(crate::shell::is_identifier(name), "{name}");
        let _ = writeln!(self.text, "{name}={}", quote(value));
        self
    }

    /// `NAME=<words>`: a list the script expands with `eval "set -- $NAME"`, each word quoted.
    pub fn set_words<I, S>(&mut self, name: &str, words: I) -> &mut Script
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.set(name, &crate::shell::join(words))
    }

    /// Append a header line built by a typed wrapper in this crate (e.g. a provider definition).
    pub(crate) fn raw_header(&mut self, line: &str) -> &mut Script {
        self.text.push_str(line);
        if !line.ends_with('\n') {
            self.text.push('\n');
        }
        self
    }

    /// Close the header: the prelude and `bodies` follow.
    pub fn finish(mut self, bodies: &[&str]) -> Script {
        self.text.push_str(&PRELUDE);
        for b in bodies {
            self.text.push_str(b);
        }
        self
    }

    pub fn nonce(&self) -> &Nonce {
        &self.nonce
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The command line when the script is all of stdin.
    pub fn command_whole_stdin() -> &'static str {
        "sh -s"
    }

    /// The command line that carries the whole script itself, so the member needs no stdin:
    /// sshd opens a session channel with an empty window and widens it only once the command
    /// has started, so input costs a round trip of its own (a probe on a member 300 ms away
    /// finishes 300 ms sooner without it). The script travels as one single-quoted word of the
    /// same kind as [`Script::command`]'s, with its newlines, `'`, `!` and `\` written as the
    /// escapes `\n`, `\0047`, `\0041`, `\0134` of `printf %b`, a builtin of every `sh`; a
    /// backslash before `n` or `0` is literal inside single quotes under every login shell
    /// (fish's single quotes take only `\\` and `\'`, tcsh's only a backslash before a newline
    /// or `!`). None when the script holds another control character or non-ASCII text (a
    /// login shell's locale could read it differently), or would be a long argument
    /// ([`CARRY_MAX`]): the caller sends it on stdin instead. The nonce is then on the member's
    /// command line, readable by its own processes: it still keeps start-up output from being
    /// taken for a record, which is what it is for.
    pub fn carried_command(&self, role: &str) -> Option<String> {
        let text = self.text.as_str();
        if text.len() > CARRY_MAX {
            return None;
        }
        let head = format!("sh -c 'eval \"$(printf %b \"$1\")\"' fleetauth-{role} '");
        let mut line = String::with_capacity(head.len() + text.len() + text.len() / 8);
        line.push_str(&head);
        // One pass, byte by byte, copying the runs between escapes (every escaped character is
        // ASCII); any other byte outside printable ASCII and tab means stdin instead.
        let mut from = 0;
        for (i, b) in text.bytes().enumerate() {
            let escape = match CARRY_CLASS[usize::from(b)] {
                0 => continue,
                CARRY_REFUSED => return None,
                k => CARRY_ESCAPES[usize::from(k - 1)].1,
            };
            line.push_str(&text[from..i]);
            line.push_str(escape);
            from = i + 1;
        }
        line.push_str(&text[from..]);
        line.push('\'');
        Some(line)
    }

    /// The script a [`Script::carried_command`] line carries (what the member's `printf %b`
    /// decodes), for fakes and tests.
    pub fn carried_text(command: &str) -> Option<String> {
        let word = command.strip_suffix('\'')?.rsplit_once(" '")?.1;
        let mut text = String::with_capacity(word.len());
        let mut rest = word;
        while let Some(at) = rest.find('\\') {
            text.push_str(&rest[..at]);
            let (c, escape) = CARRY_ESCAPES
                .iter()
                .find(|(_, escape)| rest[at..].starts_with(escape))?;
            text.push(char::from(*c));
            rest = &rest[at + escape.len()..];
        }
        text.push_str(rest);
        Some(text)
    }

    /// The command line when data follows the script on stdin: `sh` reads exactly the script's
    /// bytes (`dd bs=1` never reads past them; a shell reading a script from a pipe would) and
    /// the script reads the rest. One single-quoted word without `\`, `!` or newlines: the same
    /// under sh, bash, zsh, fish, tcsh and busybox ash. `role` (`provision`, `run`) names the
    /// script's `$0`, so a member's process list and logs tell what is running.
    pub fn command(&self, role: Role) -> String {
        format!(
            "sh -c 'eval \"$(dd bs=1 count={} 2>/dev/null)\"' fleetauth-{}",
            self.text.len(),
            role.as_str()
        )
    }
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

/// The script that runs `argv` on a member with its env file sourced (`run.sh`); its command
/// line ([`Script::command`]) leaves the channel's stdin past the script to the user's command.
pub fn run_script(env_file: &str, argv: &[String]) -> Script {
    let mut script = Script::new();
    script.set("FA_ENV", env_file).set_words("FA_ARGV", argv);
    script.finish(&[&RUN_MAIN])
}

/// The script that runs a provider's own login (`argv`) on a member with its env file sourced
/// (`login.sh`), on a pty when `pty` (the command replaces the shell) or else in its own process
/// group, ended with the channel.
pub fn login_script(env_file: &str, argv: &[String], pty: bool) -> Script {
    let mut script = Script::new();
    script
        .set("FA_ENV", env_file)
        .set_words("FA_ARGV", argv)
        .set("FA_PTY", if pty { "1" } else { "0" });
    script.finish(&[&LOGIN_MAIN])
}

/// What a script started with [`Script::command`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Provision,
    Run,
    /// A provider's own login, run by `fleetauth login` (the script is `run.sh`).
    Login,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Provision => "provision",
            Role::Run => "run",
            Role::Login => "login",
        }
    }
}

/// One record of a script's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub provider: &'a str,
    pub field: &'a str,
    pub value: &'a str,
}

impl Record<'_> {
    /// The value of a record written with `fa_recb` / `fa_recs`: after a leading `=` as it is
    /// (one printable line; base64 never starts with `=`), else base64-decoded.
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        if let Some(plain) = self.value.strip_prefix('=') {
            return plain.as_bytes().to_vec();
        }
        base64::engine::general_purpose::STANDARD
            .decode(self.value.trim())
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

/// The records in `output` framed with `nonce`, in order; every other line is ignored.
pub fn records<'a>(output: &'a [u8], nonce: &Nonce) -> Vec<Record<'a>> {
    let prefix = format!("@@FA{}\t", nonce.as_str());
    output
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, '\t');
            Some(Record {
                provider: parts.next()?,
                field: parts.next()?,
                value: parts.next()?,
            })
        })
        .collect()
}

/// The line a script prints when it waits for the client's verdict.
pub fn verdict_request(nonce: &Nonce) -> Vec<u8> {
    format!("@@FA{}\t-\tverify\t1\n", nonce.as_str()).into_bytes()
}

/// The `fatal` message of a script's answer, if it gave one.
pub fn fatal(output: &[u8], nonce: &Nonce) -> Option<String> {
    records(output, nonce)
        .into_iter()
        .find(|r| r.provider == "-" && r.field == "fatal")
        .map(|r| r.text())
}

#[cfg(test)]
mod envfile_awk_tests;
#[cfg(test)]
mod tests;
