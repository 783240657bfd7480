//! The member's env file: the lines fleetauth writes into it.
//!
//! The env file (`~/.config/fleetauth/env` by default) is sourced before every prompt and every
//! dispatched command. It is the operator's file as much as ours: it may hold other secrets,
//! comments, multi-line quoted values, CRLF line ends or a last line without a newline, and all
//! of that must survive a push byte for byte. So the client never reads it back: the merge runs
//! on the member (`src/remote/envfile.sh` and `envfile.awk`, driven by [`crate::provision`]), and
//! this module only renders the new assignments, which travel on the channel's stdin — never in
//! a command line.

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::shell::is_identifier;

/// Why a value cannot be rendered as an env-file line. Never contains the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    #[error(
        "`{0}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
    )]
    InvalidName(String),
    #[error("the value for {0} is empty; nothing to install")]
    EmptyValue(String),
    #[error(
        "the value for {0} contains a newline; a key is one line — paste it again without line breaks"
    )]
    Newline(String),
    #[error(
        "the value for {0} contains a carriage return (a Windows line end pasted with it?); remove it and try again"
    )]
    CarriageReturn(String),
    #[error("the value for {0} contains a NUL byte, which a shell variable cannot hold")]
    Nul(String),
}

/// `export VAR='value'\n`: one line that, sourced by any POSIX shell, sets `VAR` to exactly the
/// bytes of `value` (single quotes, each `'` written `'\''`).
///
/// Refused: a `var` that is not a shell identifier; an empty value; a value containing a
/// newline or NUL (a shell variable cannot hold NUL, and a newline would break the one-line-per
/// variable merge); and a value containing a carriage return — a key never legitimately
/// contains one, it is the trace of a CRLF paste, and installing it would produce a key that
/// fails at the vendor with no visible cause.
pub fn render_assignment(var: &str, value: &SecretString) -> Result<SecretString, EnvFileError> {
    if !is_identifier(var) {
        return Err(EnvFileError::InvalidName(var.to_string()));
    }
    let v = value.expose_secret();
    if v.is_empty() {
        return Err(EnvFileError::EmptyValue(var.to_string()));
    }
    if v.contains('\n') {
        return Err(EnvFileError::Newline(var.to_string()));
    }
    if v.contains('\r') {
        return Err(EnvFileError::CarriageReturn(var.to_string()));
    }
    if v.contains('\0') {
        return Err(EnvFileError::Nul(var.to_string()));
    }
    let mut line = String::with_capacity(var.len() + v.len() + 16);
    line.push_str("export ");
    line.push_str(var);
    line.push('=');
    crate::shell::push_single_quoted(&mut line, v);
    line.push('\n');
    Ok(SecretString::from(line))
}

/// The stdin of an env-file push: one [`render_assignment`] line per `(var, value)`, in order.
pub fn push_input(assignments: &[(&str, &SecretString)]) -> Result<SecretSlice<u8>, EnvFileError> {
    let mut bytes = Vec::new();
    for (var, value) in assignments {
        let line = render_assignment(var, value)?;
        bytes.extend_from_slice(line.expose_secret().as_bytes());
    }
    Ok(SecretSlice::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn assignment_is_single_quoted_with_escaped_quotes() {
        let line = render_assignment("K", &secret("it's")).unwrap();
        assert_eq!(line.expose_secret(), "export K='it'\\''s'\n");
    }

    #[test]
    fn assignment_refuses_bad_names_and_values() {
        let ok = secret("AIzaSyD-abcdefghijkl");
        for bad in ["", "1ABC", "A-B", "A B", "A=B", "Ä"] {
            assert_eq!(
                render_assignment(bad, &ok).unwrap_err(),
                EnvFileError::InvalidName(bad.to_string())
            );
        }
        let v = |s: &str| render_assignment("K", &secret(s)).unwrap_err();
        assert_eq!(v(""), EnvFileError::EmptyValue("K".into()));
        assert_eq!(v("abc\ndef"), EnvFileError::Newline("K".into()));
        assert_eq!(v("abcdef\r"), EnvFileError::CarriageReturn("K".into()));
        assert_eq!(v("abc\0def"), EnvFileError::Nul("K".into()));
        // The error text names the variable, never the value.
        let msg = render_assignment("K", &secret("sekrit\nvalue"))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("sekrit"), "{msg}");
    }
}
