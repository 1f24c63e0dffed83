//! The configuration file's syntax: EMQX 5's `emqx.conf` written flat, one `key = value` per
//! line (HOCON's path expressions, e.g. `listeners.tcp.default.bind = "0.0.0.0:1883"`).
//!
//! Accepted: blank lines, comments starting with `#` or `//` (whole line, or after an unquoted
//! value), values bare or in double quotes (`\"` and `\\` escape inside), `key = value` or
//! `key: value`. A later line for the same key wins, as in HOCON. Not accepted, with an error
//! that names the line: `{ ... }` blocks, arrays, includes, substitutions. EMQX operators write
//! nested blocks; the error says to write the flat key instead, so nothing is silently misread.

use std::path::Path;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written (dotted path).
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// A syntax error on one line (the caller adds the file name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Longest configuration file read: a config is a few kilobytes; a bigger file is a mistake.
pub const MAX_FILE_SIZE: u64 = 1 << 20;

/// Why the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Open or read failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Over [`MAX_FILE_SIZE`].
    #[error("larger than {MAX_FILE_SIZE} bytes")]
    TooLarge,
    /// Not UTF-8.
    #[error("not UTF-8 text")]
    NotUtf8,
}

/// Reads a file, bounded by [`MAX_FILE_SIZE`].
pub fn read(path: &Path) -> Result<String, ReadError> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(buf).map_err(|_| ReadError::NotUtf8)
}

fn err(line: usize, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line,
        message: message.into(),
    }
}

/// Parses the whole text into entries, in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim();
        if s.is_empty() || s.starts_with('#') || s.starts_with("//") {
            continue;
        }
        let Some(sep) = s.find(['=', ':', '{']) else {
            return Err(err(line, format!("expected `key = value`, got {s:?}")));
        };
        let key = s[..sep].trim();
        if s[sep..].starts_with('{') || s.ends_with('{') {
            return Err(err(
                line,
                "`{ ... }` blocks are not supported: write each setting as a flat dotted key \
                 (`listeners.tcp.default.bind = \"0.0.0.0:1883\"`)",
            ));
        }
        if key.is_empty() {
            return Err(err(line, "missing key before `=`"));
        }
        if let Some(c) = key
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(err(line, format!("invalid character {c:?} in key {key:?}")));
        }
        if key.starts_with('.') || key.ends_with('.') || key.contains("..") {
            return Err(err(line, format!("invalid key {key:?}")));
        }
        let value = parse_value(s[sep + 1..].trim()).map_err(|m| err(line, m))?;
        out.push(Entry {
            key: key.to_owned(),
            value,
            line,
        });
    }
    Ok(out)
}

/// A quoted string (escapes resolved, nothing but a comment after it) or a bare value (up to
/// a `#` or `//` comment).
fn parse_value(s: &str) -> Result<String, String> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut v = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    let tail = rest[i + 1..].trim();
                    if tail.is_empty() || tail.starts_with('#') || tail.starts_with("//") {
                        return Ok(v);
                    }
                    return Err(format!("unexpected {tail:?} after the quoted value"));
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => v.push('"'),
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, 'n')) => v.push('\n'),
                    Some((_, 't')) => v.push('\t'),
                    Some((_, o)) => return Err(format!("unknown escape \\{o} in a quoted value")),
                    None => break,
                },
                c => v.push(c),
            }
        }
        return Err("unterminated quoted value".to_owned());
    }
    let end = [s.find('#'), s.find("//")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(s.len());
    let v = s[..end].trim();
    if v.is_empty() {
        return Err("missing value after `=`".to_owned());
    }
    if v.starts_with(['[', '{', '$']) {
        return Err(format!(
            "{v:?}: arrays, objects and substitutions are not supported"
        ));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keys_comments_and_quotes() {
        let text = "# a comment\n\
                    // another\n\
                    \n\
                    node.name = \"emqx@127.0.0.1\"\n\
                    listeners.tcp.default.bind = 0.0.0.0:1883  # inline\n\
                    allow_anonymous: false\n\
                    node.cookie = \"a\\\"b#c\" // trailing\n";
        let e = parse(text).unwrap();
        let kv: Vec<_> = e
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect();
        assert_eq!(
            kv,
            [
                ("node.name", "emqx@127.0.0.1", 4),
                ("listeners.tcp.default.bind", "0.0.0.0:1883", 5),
                ("allow_anonymous", "false", 6),
                ("node.cookie", "a\"b#c", 7),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "a = 1\nlisteners.tcp.default {\n",
                2,
                "blocks are not supported",
            ),
            ("just words\n", 1, "expected `key = value`"),
            ("a = \"open\n", 1, "unterminated"),
            ("\n\nk =\n", 3, "missing value"),
            ("bad key = 1\n", 1, "invalid character"),
            ("a..b = 1\n", 1, "invalid key"),
            ("a = [1, 2]\n", 1, "arrays"),
            ("a = \"x\" y\n", 1, "after the quoted value"),
            ("= 3\n", 1, "missing key"),
        ];
        for (text, line, msg) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(msg), "{text:?}: {}", e.message);
        }
    }
}
