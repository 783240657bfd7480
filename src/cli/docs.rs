//! `fleetauth completions SHELL` and `fleetauth man`: generated from the clap definitions
//! (clap_complete, clap_mangen), so they can never disagree with what the parser accepts.

use std::path::Path;

use clap::CommandFactory;

use super::out::out;
use super::{Cli, CompletionShell, Failure};

/// The completion script for `shell`, on stdout.
pub fn completions(shell: CompletionShell) -> Result<i32, Failure> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "fleetauth", &mut buf);
    write_utf8(buf)
}

/// The top-level manual page on stdout, or every command's page (`fleetauth-sweep.1`, …) in
/// `dir`.
pub fn man(dir: Option<&Path>) -> Result<i32, Failure> {
    let fail =
        |e: std::io::Error| Failure::failed(format!("error: cannot write the man page: {e}"));
    match dir {
        Some(dir) => {
            clap_mangen::generate_to(Cli::command(), dir).map_err(fail)?;
            Ok(0)
        }
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .map_err(fail)?;
            write_utf8(buf)
        }
    }
}

fn write_utf8(buf: Vec<u8>) -> Result<i32, Failure> {
    let text = String::from_utf8(buf)
        .map_err(|e| Failure::failed(format!("error: generated text is not UTF-8: {e}")))?;
    out!("{text}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag and argument of every command says what it is for (`--help`, the man page
    /// and the completions' descriptions all come from these texts).
    #[test]
    fn every_argument_of_every_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && !path.ends_with(" help") {
                missing.push(format!("{path} (about)"));
            }
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_man_page_and_completions_cover_every_command() {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(".TH fleetauth 1"), "{page}");
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Fish] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "fleetauth", &mut buf);
            let text = String::from_utf8(buf).unwrap();
            for sub in Cli::command().get_subcommands() {
                assert!(text.contains(sub.get_name()), "{shell}: {}", sub.get_name());
                assert!(page.contains(sub.get_name()), "man: {}", sub.get_name());
            }
        }
    }
}
