//! Codes the operator pastes back, routed to the one login that asked for each.
//!
//! On a terminal each code is read with a hidden prompt naming the member and provider, one at
//! a time. Otherwise (scripts) stdin is read line by line: `MEMBER PROVIDER CODE` goes to that
//! login; a line that is only `CODE` goes to the login that asked first and has none yet.
//! A code is a [`SecretString`] from the moment it is read; it is handed to the login's channel
//! and never printed, logged or put in an event.

use std::collections::VecDeque;
use std::io::BufRead;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

/// Where pasted codes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// Hidden prompts on the terminal.
    Terminal,
    /// Lines on stdin.
    Lines,
    /// None (`--no-input`): a login that needs a code fails.
    Nothing,
}

struct Request {
    member: String,
    provider: String,
    reply: oneshot::Sender<SecretString>,
}

/// Hands out pasted codes; cheap to clone.
#[derive(Clone)]
pub struct CodeBroker {
    tx: mpsc::UnboundedSender<Request>,
}

impl CodeBroker {
    /// A broker reading codes per `mode`.
    pub fn spawn(mode: InputMode) -> CodeBroker {
        let (tx, rx) = mpsc::unbounded_channel();
        match mode {
            InputMode::Terminal => {
                tokio::spawn(terminal(rx));
            }
            InputMode::Lines => {
                let (ltx, lrx) = mpsc::unbounded_channel();
                std::thread::spawn(move || {
                    for line in std::io::stdin().lock().lines() {
                        let Ok(line) = line else { break };
                        if ltx.send(SecretString::from(line)).is_err() {
                            break;
                        }
                    }
                });
                tokio::spawn(lines(rx, lrx));
            }
            InputMode::Nothing => drop(rx),
        }
        CodeBroker { tx }
    }

    /// Ask for the code of `member`'s `provider` login; the receiver fails when none will come.
    pub fn request(&self, member: &str, provider: &str) -> oneshot::Receiver<SecretString> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Request {
            member: member.to_string(),
            provider: provider.to_string(),
            reply,
        });
        rx
    }
}

async fn terminal(mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(req) = rx.recv().await {
        let prompt = format!(
            "{} {}: paste the code shown after authorising (input hidden): ",
            req.member, req.provider
        );
        let read = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt)).await;
        match read {
            Ok(Ok(code)) if !code.trim().is_empty() => {
                let _ = req.reply.send(SecretString::from(code.trim().to_string()));
            }
            _ => {}
        }
    }
}

/// A stdin line: the login it names (if any) and the code.
pub fn parse_line(line: &str) -> Option<(Option<(String, String)>, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [code] => Some((None, code.to_string())),
        [member, provider, code] => Some((
            Some((member.to_string(), provider.to_string())),
            code.to_string(),
        )),
        _ => None,
    }
}

async fn lines(
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut input: mpsc::UnboundedReceiver<SecretString>,
) {
    let mut waiting: VecDeque<Request> = VecDeque::new();
    let mut addressed: Vec<((String, String), SecretString)> = Vec::new();
    let mut loose: VecDeque<SecretString> = VecDeque::new();
    let mut input_open = true;
    loop {
        // Match what can be matched.
        let mut i = 0;
        while i < waiting.len() {
            let key = (waiting[i].member.clone(), waiting[i].provider.clone());
            let code = match addressed.iter().position(|(k, _)| *k == key) {
                Some(at) => Some(addressed.remove(at).1),
                None if i == 0 => loose.pop_front(),
                None => None,
            };
            match code {
                Some(code) => {
                    let req = waiting.remove(i).expect("in range");
                    let _ = req.reply.send(code);
                }
                None => i += 1,
            }
        }
        if !input_open && loose.is_empty() {
            // No more codes will come: let every waiting login know.
            waiting.clear();
        }
        tokio::select! {
            req = requests.recv() => match req {
                Some(r) => waiting.push_back(r),
                None => return,
            },
            line = input.recv(), if input_open => match line {
                Some(line) => match parse_line(line.expose_secret()) {
                    Some((Some(key), code)) => addressed.push((key, SecretString::from(code))),
                    Some((None, code)) => loose.push_back(SecretString::from(code)),
                    None => {}
                },
                None => input_open = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_their_login_or_not() {
        assert_eq!(parse_line("  abc  "), Some((None, "abc".into())));
        assert_eq!(
            parse_line("m1 claude xyz"),
            Some((Some(("m1".into(), "claude".into())), "xyz".into()))
        );
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("a b"), None);
    }
}
