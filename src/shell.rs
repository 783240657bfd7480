//! POSIX shell quoting. Every remote command is assembled from data through [`quote`], never by
//! pasting strings, so a member name, path or argument can never become shell syntax.

/// Quote `s` as one POSIX-sh word: wrapped in single quotes, each `'` written as `'\''`.
/// Words made only of safe characters are returned bare, which keeps logs readable.
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./-_".contains(&b));
    if safe {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    push_single_quoted(&mut out, s);
    out
}

/// Append `s` to `out` single-quoted (`'…'`, each `'` written `'\''`), always, safe or not.
/// Writes into the caller's buffer so a secret's quoted form exists in one place only.
pub fn push_single_quoted(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

/// A POSIX shell variable name: letters, digits and `_`, not starting with a digit. The one check
/// used wherever a name from data is put in a script.
pub fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Join words into a command line, each quoted.
pub fn join<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_words_stay_bare() {
        assert_eq!(quote("gemini"), "gemini");
        assert_eq!(quote("--output-format"), "--output-format");
    }

    #[test]
    fn unsafe_words_are_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("Reply with OK"), "'Reply with OK'");
        assert_eq!(quote("a'b"), "'a'\\''b'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }

    #[test]
    fn quoted_words_round_trip_through_sh() {
        for s in [
            "a b",
            "it's",
            "$HOME",
            "`x`",
            "back\\slash",
            "\"q\"",
            "tab\there",
            "*",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("GEMINI_API_KEY"));
        assert!(is_identifier("_x1"));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("A-B"));
        assert!(!is_identifier("${X}"));
        assert!(!is_identifier(""));
    }
}
