//! Typed, located access to a parsed TOML document, for the configuration loaders.
//!
//! Inventories and provider files are small but written by hand, so every mistake must come
//! back as a [`ConfigError`] pointing at the exact key or value. serde's derive gives good types
//! but generic messages ("unknown field, expected one of …") and no way to say *which* table a
//! key was in or to validate a value after the fact with its location. Instead the loaders parse
//! with `toml::de::DeTable` (every key and value keeps its byte span) and read it through the
//! small [`Table`] / [`Value`] API here: each accessor either returns the typed value or an
//! error already located and worded for the user. Nothing in here knows about inventories or
//! providers; the loaders say which keys exist and what they mean.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config_error::ConfigError;

/// The file being read: its name for messages and its full text for snippets.
#[derive(Clone, Copy)]
pub(crate) struct Source<'s> {
    pub path: &'s Path,
    pub text: &'s str,
}

impl<'s> Source<'s> {
    pub fn new(path: &'s Path, text: &'s str) -> Source<'s> {
        Source { path, text }
    }

    /// An error located at `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.path, self.text, span, message)
    }

    /// Parses the document; a syntax error is located where the parser stopped.
    pub fn parse(&self) -> Result<Spanned<DeTable<'s>>, ConfigError> {
        DeTable::parse(self.text).map_err(|e| {
            let message = format!("invalid TOML: {}", e.message().trim());
            let error = match e.span() {
                Some(span) => self.error(span, message),
                None => ConfigError::new(self.path, message),
            };
            error.with_help("see https://toml.io for the syntax")
        })
    }

    /// The top-level table of a parsed document.
    pub fn root<'t>(&'t self, doc: &'t Spanned<DeTable<'s>>) -> Table<'t, 's> {
        Table {
            src: *self,
            name: "the top level".to_string(),
            table: doc.get_ref(),
            span: 0..0,
        }
    }
}

/// A TOML table plus the words that name it in messages (`[members.build-01]`).
pub(crate) struct Table<'t, 's> {
    src: Source<'s>,
    name: String,
    table: &'t DeTable<'s>,
    /// Where the table is written (its header); errors about a missing key point here.
    span: Range<usize>,
}

impl<'t, 's> Table<'t, 's> {
    /// How messages name this table (`[defaults]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn source(&self) -> Source<'s> {
        self.src
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Fails on the first key (in file order) that is not in `accepted`, listing the accepted
    /// keys in the help line.
    pub fn deny_unknown(&self, accepted: &[&str]) -> Result<(), ConfigError> {
        for (key, _) in self.entries() {
            if !accepted.contains(&key.get_ref().as_ref()) {
                return Err(self
                    .src
                    .error(
                        key.span(),
                        format!("unknown key `{}` in {}", key.get_ref(), self.name),
                    )
                    .with_help(format!("accepted keys: {}", accepted.join(", "))));
            }
        }
        Ok(())
    }

    /// Entries in the order they are written in the file.
    pub fn entries(&self) -> Vec<(&'t Spanned<Cow<'s, str>>, &'t Spanned<DeValue<'s>>)> {
        let mut entries: Vec<_> = self.table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
    }

    /// Entries as [`Value`]s, in file order.
    pub fn values(&self) -> Vec<Value<'t, 's>> {
        self.entries()
            .into_iter()
            .map(|(key, value)| self.value(key, value))
            .collect()
    }

    fn value(
        &self,
        key: &'t Spanned<Cow<'s, str>>,
        value: &'t Spanned<DeValue<'s>>,
    ) -> Value<'t, 's> {
        Value {
            src: self.src,
            what: format!("`{}` in {}", key.get_ref(), self.name),
            key: key.get_ref().to_string(),
            key_span: key.span(),
            span: value.span(),
            value: value.get_ref(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Value<'t, 's>> {
        self.table
            .get_key_value(key)
            .map(|(key, value)| self.value(key, value))
    }

    /// The value of `key`, or an error pointing at the table saying it is missing.
    pub fn required(&self, key: &str) -> Result<Value<'t, 's>, ConfigError> {
        self.get(key).ok_or_else(|| self.missing(key))
    }

    /// An error pointing at the table that says `key` is missing.
    pub fn missing(&self, key: &str) -> ConfigError {
        self.src.error(
            self.span.clone(),
            format!("missing key `{key}` in {}", self.name),
        )
    }

    /// An error pointing at the table's header.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        self.src.error(self.span.clone(), message)
    }
}

/// One value with its key, both located.
pub(crate) struct Value<'t, 's> {
    src: Source<'s>,
    /// "`port` in [members.build-01]", or "item 2 of `providers` in …" for array elements.
    what: String,
    key: String,
    key_span: Range<usize>,
    span: Range<usize>,
    value: &'t DeValue<'s>,
}

impl<'t, 's> Value<'t, 's> {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How messages name this value ("`port` in [members.build-01]").
    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// An error with the caret under the value.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        self.src.error(self.span.clone(), message)
    }

    /// An error with the caret under the key.
    pub fn key_error(&self, message: impl Into<String>) -> ConfigError {
        self.src.error(self.key_span.clone(), message)
    }

    fn type_error(&self, expected: &str) -> ConfigError {
        self.error(format!(
            "{} must be {expected}, found {}",
            self.what,
            type_name(self.value)
        ))
    }

    pub fn str(&self) -> Result<&'t str, ConfigError> {
        match self.value {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.type_error("a string")),
        }
    }

    /// A string that is not empty (after trimming whitespace).
    pub fn non_empty_str(&self) -> Result<&'t str, ConfigError> {
        let s = self.str()?;
        if s.trim().is_empty() {
            return Err(self.error(format!("{} must not be empty", self.what)));
        }
        Ok(s)
    }

    pub fn bool(&self) -> Result<bool, ConfigError> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.type_error("true or false")),
        }
    }

    pub fn integer(&self) -> Result<i64, ConfigError> {
        match self.value {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                i64::from_str_radix(&digits, i.radix())
                    .map_err(|_| self.error(format!("{} is out of range", self.what)))
            }
            _ => Err(self.type_error("an integer")),
        }
    }

    /// An integer within `range`, with the range in the message.
    pub fn integer_in(&self, range: std::ops::RangeInclusive<i64>) -> Result<i64, ConfigError> {
        let n = self.integer()?;
        if !range.contains(&n) {
            return Err(self.error(format!(
                "{} must be between {} and {}, found {n}",
                self.what,
                range.start(),
                range.end()
            )));
        }
        Ok(n)
    }

    /// One of `accepted`; the error lists them.
    pub fn one_of(&self, accepted: &[&str]) -> Result<&'t str, ConfigError> {
        let s = self.str()?;
        if accepted.contains(&s) {
            Ok(s)
        } else {
            Err(self
                .error(format!("invalid value \"{s}\" for {}", self.what))
                .with_help(format!("accepted values: {}", accepted.join(", "))))
        }
    }

    /// One value of a [`spelled!`](crate::spelled) enum (pass its `ALL`), written with its one
    /// spelling; the error lists every spelling.
    pub fn one_of_values<T: Copy + std::fmt::Display>(&self, all: &[T]) -> Result<T, ConfigError> {
        let words: Vec<String> = all.iter().map(ToString::to_string).collect();
        let accepted: Vec<&str> = words.iter().map(String::as_str).collect();
        let s = self.one_of(&accepted)?;
        let at = accepted
            .iter()
            .position(|w| *w == s)
            .expect("one_of returned one of them");
        Ok(all[at])
    }

    /// A duration setting, by [`parse_duration`]; the error is located and names the key.
    pub fn duration(&self) -> Result<Duration, ConfigError> {
        let s = match self.value {
            DeValue::String(s) => s.as_ref(),
            _ => {
                return Err(self
                    .type_error("a duration string")
                    .with_help(DURATION_HELP));
            }
        };
        parse_duration(s).map_err(|e| match e {
            BadDuration::Syntax(why) => self
                .error(format!("invalid duration \"{s}\" for {}: {why}", self.what))
                .with_help(DURATION_HELP),
            BadDuration::Zero => self.error(format!("{} must be longer than zero", self.what)),
            BadDuration::TooLong => self
                .error(format!(
                    "{} must be at most {MAX_DURATION_TEXT}, found \"{s}\"",
                    self.what
                ))
                .with_help(format!(
                    "a deadline longer than {MAX_DURATION_TEXT} is refused: no member should take that long"
                )),
        })
    }

    /// The elements of an array, each located and named ("item 2 of `providers` in …").
    pub fn array(&self) -> Result<Vec<Value<'t, 's>>, ConfigError> {
        match self.value {
            DeValue::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| Value {
                    src: self.src,
                    what: format!("item {} of {}", i + 1, self.what),
                    key: self.key.clone(),
                    key_span: self.key_span.clone(),
                    span: item.span(),
                    value: item.get_ref(),
                })
                .collect()),
            _ => Err(self.type_error("an array")),
        }
    }

    /// An array of strings, each located.
    pub fn str_array(&self) -> Result<Vec<(&'t str, Value<'t, 's>)>, ConfigError> {
        self.array()?
            .into_iter()
            .map(|item| Ok((item.str()?, item)))
            .collect()
    }

    /// An array of strings, values only.
    pub fn strings(&self) -> Result<Vec<String>, ConfigError> {
        Ok(self
            .str_array()?
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect())
    }

    /// A (sub)table, named `name` in messages.
    pub fn table(&self, name: impl Into<String>) -> Result<Table<'t, 's>, ConfigError> {
        match self.value {
            DeValue::Table(table) => Ok(Table {
                src: self.src,
                name: name.into(),
                table,
                span: self.span.clone(),
            }),
            _ => Err(self.type_error("a table")),
        }
    }
}

/// The longest duration fleetauth accepts anywhere: inventory timeouts, provider probe
/// deadlines, `run --timeout`. Deadlines are added to the clock, and a huge one
/// (`"300000000000y"`) would overflow it in every member's task; a day is far beyond any
/// sensible deadline and far from any overflow. Documented in README.md,
/// inventory/example.toml and providers/README.md.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// [`MAX_DURATION`] as messages and the documentation write it.
const MAX_DURATION_TEXT: &str = "24h";

const DURATION_HELP: &str =
    "write a duration such as \"10s\", \"1m30s\" or \"500ms\" (at most 24h)";

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadDuration {
    /// Not a duration at all; humantime's words.
    Syntax(String),
    Zero,
    /// Longer than [`MAX_DURATION`].
    TooLong,
}

impl std::fmt::Display for BadDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadDuration::Syntax(why) => write!(f, "{why} ({DURATION_HELP})"),
            BadDuration::Zero => f.write_str("must be longer than zero"),
            BadDuration::TooLong => write!(f, "must be at most {MAX_DURATION_TEXT}"),
        }
    }
}

impl std::error::Error for BadDuration {}

/// The one parser of every duration fleetauth reads (inventory and provider files through
/// [`Value::duration`], `run --timeout` on the command line): a humantime duration ("10s",
/// "1m30s", "500ms"), longer than zero and at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, BadDuration> {
    let duration = humantime::parse_duration(s).map_err(|e| BadDuration::Syntax(e.to_string()))?;
    if duration.is_zero() {
        Err(BadDuration::Zero)
    } else if duration > MAX_DURATION {
        Err(BadDuration::TooLong)
    } else {
        Ok(duration)
    }
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A shell variable name (`^[A-Za-z_][A-Za-z0-9_]*$`): what provider files (and their `[login]`
/// sections) accept wherever a variable is named.
pub fn valid_env_var(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A regex value, located when it does not compile.
pub fn regex(value: &Value<'_, '_>) -> Result<regex::Regex, ConfigError> {
    let pattern = value.str()?;
    regex::Regex::new(pattern).map_err(|e| {
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or("").trim().to_string();
        value
            .error(format!("invalid regex for {}: {last}", value.what()))
            .with_help("regex syntax: https://docs.rs/regex/#syntax (write it in '…' to avoid TOML escapes)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_root<T>(text: &str, f: impl FnOnce(Table<'_, '_>) -> T) -> T {
        let src = Source::new(Path::new("t.toml"), text);
        let doc = src.parse().expect("test TOML parses");
        f(src.root(&doc))
    }

    #[test]
    fn entries_keep_file_order() {
        with_root("b = 1\na = 2\nc = 3\n", |root| {
            let keys: Vec<_> = root.values().iter().map(|v| v.key().to_string()).collect();
            assert_eq!(keys, ["b", "a", "c"]);
        });
    }

    #[test]
    fn integers_accept_underscores_and_radix() {
        with_root("a = 1_000\nb = 0x10\n", |root| {
            assert_eq!(root.required("a").unwrap().integer().unwrap(), 1000);
            assert_eq!(root.required("b").unwrap().integer().unwrap(), 16);
        });
    }

    #[test]
    fn type_error_points_at_the_value() {
        with_root("[t]\nport = \"22\"\n", |root| {
            let t = root.required("t").unwrap().table("[t]").unwrap();
            let err = t.required("port").unwrap().integer().unwrap_err();
            assert_eq!((err.line, err.col), (Some(2), Some(8)));
            assert_eq!(
                err.message,
                "`port` in [t] must be an integer, found a string"
            );
        });
    }

    #[test]
    fn durations_are_bounded_by_one_parser() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("0s"), Err(BadDuration::Zero));
        assert_eq!(parse_duration("24h 1s"), Err(BadDuration::TooLong));
        assert_eq!(parse_duration("300000000000y"), Err(BadDuration::TooLong));
        assert!(matches!(
            parse_duration("soon"),
            Err(BadDuration::Syntax(_))
        ));
        assert_eq!(parse_duration(MAX_DURATION_TEXT), Ok(MAX_DURATION));
        with_root("[t]\nwait = \"300000000000y\"\n", |root| {
            let t = root.required("t").unwrap().table("[t]").unwrap();
            let err = t.required("wait").unwrap().duration().unwrap_err();
            assert_eq!((err.line, err.col), (Some(2), Some(8)));
            assert_eq!(
                err.message,
                "`wait` in [t] must be at most 24h, found \"300000000000y\""
            );
        });
    }

    #[test]
    fn syntax_error_is_located() {
        let src = Source::new(Path::new("t.toml"), "a = 1\nb = \n");
        let err = src.parse().unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.starts_with("invalid TOML: "), "{}", err.message);
    }
}
