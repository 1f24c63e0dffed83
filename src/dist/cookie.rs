//! The magic cookie: where it comes from, and how it is kept out of logs.
//!
//! Sources in order: `--cookie`, env `EMQX_NODE_COOKIE`, `$HOME/.erlang.cookie`, then
//! `$XDG_CONFIG_HOME/erlang/.erlang.cookie`; when neither file exists, `$HOME/.erlang.cookie`
//! is created as `auth:create_cookie/1` (OTP 25 `lib/kernel/src/auth.erl`) creates it: 20
//! random upper-case letters, no newline, mode 0400. A file that is not a regular file or that
//! group/others can access is an error, as in `auth:check_attributes/4`, and so are bad
//! characters (`auth:check_cookie/2`).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Env var EMQX reads the cookie from.
pub const COOKIE_ENV: &str = "EMQX_NODE_COOKIE";
/// A cookie becomes an atom on BEAM: at most 255 characters.
const MAX_COOKIE_LEN: usize = 255;

/// A distribution cookie. `Debug` prints `Cookie(<redacted>)` and there is no `Display`, so a
/// cookie cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(String);

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(<redacted>)")
    }
}

/// Why no cookie could be had.
#[derive(Debug, thiserror::Error)]
pub enum CookieError {
    /// The file is not a regular file.
    #[error("Cookie file {0} is not a regular file")]
    NotRegular(PathBuf),
    /// Group or others may read or write the file.
    #[error("Cookie file {0} must be accessible by owner only")]
    Permissions(PathBuf),
    /// The file could not be read.
    #[error("Error when reading {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file could not be created.
    #[error("Failed to create cookie file '{0}': {1}")]
    Create(PathBuf, std::io::Error),
    /// Characters outside `' '..='~'` before the trailing whitespace.
    #[error("Bad characters in cookie")]
    BadCharacters,
    /// Empty cookie.
    #[error("Too short cookie string")]
    TooShort,
    /// Longer than an atom can be.
    #[error("cookie longer than {MAX_COOKIE_LEN} characters")]
    TooLong,
    /// Neither `$HOME` nor `$XDG_CONFIG_HOME` is known.
    #[error("No home for cookie file")]
    NoHome,
}

impl Cookie {
    /// A cookie given on the command line or in the environment (checked like a file's content).
    pub fn new(s: &str) -> Result<Cookie, CookieError> {
        parse_cookie(s.as_bytes())
    }

    /// The cookie bytes, for the handshake digest only.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Resolves the cookie: `explicit` (the `--cookie` flag), then `EMQX_NODE_COOKIE`, then the
    /// cookie file (created when missing).
    pub fn resolve(explicit: Option<&str>) -> Result<Cookie, CookieError> {
        if let Some(c) = explicit {
            return Cookie::new(c);
        }
        if let Ok(c) = std::env::var(COOKIE_ENV) {
            if !c.is_empty() {
                return Cookie::new(&c);
            }
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let xdg = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")))
            .map(|d| d.join("erlang").join(".erlang.cookie"));
        Cookie::from_files(
            home.map(|h| h.join(".erlang.cookie")).as_deref(),
            xdg.as_deref(),
        )
    }

    /// `auth:read_cookie/0`: the home file, else the XDG file, else create the home file
    /// (or the XDG file when there is no home).
    pub fn from_files(home: Option<&Path>, xdg: Option<&Path>) -> Result<Cookie, CookieError> {
        if let Some(h) = home {
            if let Some(c) = read_cookie_file(h)? {
                return Ok(c);
            }
        }
        if let Some(x) = xdg {
            if let Some(c) = read_cookie_file(x)? {
                return Ok(c);
            }
        }
        let target = home.or(xdg).ok_or(CookieError::NoHome)?;
        create_cookie_file(target)?;
        read_cookie_file(target)?.ok_or(CookieError::NoHome)
    }
}

/// Reads a cookie file; `Ok(None)` when it does not exist.
pub fn read_cookie_file(path: &Path) -> Result<Option<Cookie>, CookieError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CookieError::Read(path.to_path_buf(), e)),
    };
    if !meta.is_file() {
        return Err(CookieError::NotRegular(path.to_path_buf()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(CookieError::Permissions(path.to_path_buf()));
    }
    // Bounded read: a valid cookie is short; trailing whitespace is allowed but not megabytes.
    let mut buf = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| CookieError::Read(path.to_path_buf(), e))?;
    use std::io::Read;
    file.take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| CookieError::Read(path.to_path_buf(), e))?;
    parse_cookie(&buf).map(Some)
}

/// `auth:check_cookie/2`: the longest prefix of characters `' '..='~'` is the cookie; only
/// `\n`, `\r` and spaces may follow it.
fn parse_cookie(bytes: &[u8]) -> Result<Cookie, CookieError> {
    let end = bytes
        .iter()
        .position(|b| !(b' '..=b'~').contains(b))
        .unwrap_or(bytes.len());
    if bytes[end..]
        .iter()
        .any(|b| !matches!(b, b'\n' | b'\r' | b' '))
    {
        return Err(CookieError::BadCharacters);
    }
    if end == 0 {
        return Err(CookieError::TooShort);
    }
    if end > MAX_COOKIE_LEN {
        return Err(CookieError::TooLong);
    }
    // All bytes are ASCII here.
    Ok(Cookie(bytes[..end].iter().map(|&b| b as char).collect()))
}

/// `auth:create_cookie/1`: 20 random upper-case letters, mode 0400, created exclusively.
fn create_cookie_file(path: &Path) -> Result<(), CookieError> {
    use rand::Rng;
    use std::os::unix::fs::OpenOptionsExt;
    let mut rng = rand::thread_rng();
    let cookie: String = (0..20)
        .map(|_| char::from(b'A' + rng.gen_range(0..26u8)))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CookieError::Create(path.to_path_buf(), e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(|e| CookieError::Create(path.to_path_buf(), e))?;
    f.write_all(cookie.as_bytes())
        .map_err(|e| CookieError::Create(path.to_path_buf(), e))?;
    tracing::info!(path = %path.display(), "created a new cookie file");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn content_rules_follow_auth_erl() {
        assert_eq!(Cookie::new("abc").map(|c| c.0).ok(), Some("abc".into()));
        assert_eq!(
            parse_cookie(b"abc \r\n").map(|c| c.0).ok(),
            Some("abc ".into())
        );
        assert!(matches!(
            parse_cookie(b"ab\ncd"),
            Err(CookieError::BadCharacters)
        ));
        assert!(matches!(parse_cookie(b"\n"), Err(CookieError::TooShort)));
        assert!(matches!(
            parse_cookie(b"a\x01"),
            Err(CookieError::BadCharacters)
        ));
        assert!(matches!(
            Cookie::new(&"x".repeat(256)),
            Err(CookieError::TooLong)
        ));
    }

    #[test]
    fn debug_never_shows_the_cookie() {
        let c = Cookie::new("SECRETCOOKIE").ok();
        assert!(!format!("{c:?}").contains("SECRET"));
    }

    #[test]
    fn created_when_missing_then_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let home = dir.path().join(".erlang.cookie");
        let c = Cookie::from_files(Some(&home), None)?;
        assert_eq!(c.0.len(), 20);
        assert!(c.0.bytes().all(|b| b.is_ascii_uppercase()));
        assert_eq!(
            std::fs::metadata(&home)?.permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(Cookie::from_files(Some(&home), None)?, c);
        Ok(())
    }

    #[test]
    fn xdg_file_is_used_when_home_file_missing() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let xdg = dir.path().join("xdg.cookie");
        std::fs::write(&xdg, "XDGCOOKIE\n")?;
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o600))?;
        let c = Cookie::from_files(Some(&dir.path().join("none")), Some(&xdg))?;
        assert_eq!(c.0, "XDGCOOKIE");
        assert!(!dir.path().join("none").exists());
        Ok(())
    }

    #[test]
    fn group_readable_file_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("c");
        std::fs::write(&p, "ABC")?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))?;
        assert!(matches!(
            read_cookie_file(&p),
            Err(CookieError::Permissions(_))
        ));
        assert!(matches!(
            read_cookie_file(dir.path()),
            Err(CookieError::NotRegular(_))
        ));
        Ok(())
    }
}
