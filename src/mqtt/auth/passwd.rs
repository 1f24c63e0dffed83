//! The password file: one `user:hash` line per user, in mosquitto 2's format, so a file written
//! by `mosquitto_passwd` works here and one written by `beamq passwd` works in mosquitto.
//!
//! Hash formats (mosquitto `src/password_mosq.c`):
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash, both base64
//!   (standard alphabet, padded). What we write; mosquitto's default of 101 iterations.
//! - `$6$SALT$HASH`: SHA-512 over password then salt (mosquitto 1.x); read, never written.
//!
//! Blank lines and lines starting with `#` are skipped. A user appears once; user names have no
//! `:` and no line break. Verification is constant-time in the hash bytes (`ring`).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::rand::SecureRandom;
use ring::{digest, pbkdf2};
use thiserror::Error;

/// mosquitto's default PBKDF2 iteration count (`PW_DEFAULT_ITERATIONS`).
pub const DEFAULT_ITERATIONS: u32 = 101;
/// Salt length mosquitto uses.
pub const SALT_LEN: usize = 12;
/// SHA-512 output length.
const HASH_LEN: usize = 64;
/// An iteration count above this in a file is refused: it would let a file stall every CONNECT.
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// Why a password file or entry was refused.
#[derive(Debug, Error)]
pub enum PasswdError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not `user:$7$...` or `user:$6$...`.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A user name that cannot be written to the file.
    #[error("invalid user name (empty, or contains ':' or a line break)")]
    BadUserName,
    /// Hashing needs randomness for the salt.
    #[error("no random salt available")]
    Random,
}

/// One user's stored hash.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        /// Iteration count.
        iterations: NonZeroU32,
        /// Salt bytes.
        salt: Vec<u8>,
        /// Derived key (64 bytes).
        hash: Vec<u8>,
    },
    /// `$6$`: SHA-512(password ‖ salt).
    Sha512 {
        /// Salt bytes.
        salt: Vec<u8>,
        /// Digest (64 bytes).
        hash: Vec<u8>,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Pbkdf2Sha512 { iterations, .. } => {
                write!(f, "Pbkdf2Sha512({iterations} iterations)")
            }
            Credential::Sha512 { .. } => f.write_str("Sha512"),
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                B64.encode(salt),
                B64.encode(hash)
            ),
            Credential::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", B64.encode(salt), B64.encode(hash))
            }
        }
    }
}

impl Credential {
    /// Hashes `password` with a fresh random salt (the `$7$` format).
    pub fn hash(password: &[u8], iterations: NonZeroU32) -> Result<Credential, PasswdError> {
        let mut salt = vec![0u8; SALT_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| PasswdError::Random)?;
        let mut hash = vec![0u8; HASH_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            iterations,
            &salt,
            password,
            &mut hash,
        );
        Ok(Credential::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        })
    }

    /// Parses the part after `user:`.
    pub fn parse(s: &str) -> Result<Credential, &'static str> {
        let b64 = |part: &str| B64.decode(part).map_err(|_| "bad base64");
        if let Some(rest) = s.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(iter), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("expected $7$iterations$salt$hash");
            };
            let iterations: u32 = iter.parse().map_err(|_| "bad iteration count")?;
            if iterations > MAX_ITERATIONS {
                return Err("iteration count too high");
            }
            let iterations = NonZeroU32::new(iterations).ok_or("iteration count is 0")?;
            let (salt, hash) = (b64(salt)?, b64(hash)?);
            if hash.len() != HASH_LEN || salt.is_empty() {
                return Err("hash must be 64 bytes and salt non-empty");
            }
            Ok(Credential::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            })
        } else if let Some(rest) = s.strip_prefix("$6$") {
            let Some((salt, hash)) = rest.split_once('$') else {
                return Err("expected $6$salt$hash");
            };
            let (salt, hash) = (b64(salt)?, b64(hash)?);
            if hash.len() != HASH_LEN || salt.is_empty() {
                return Err("hash must be 64 bytes and salt non-empty");
            }
            Ok(Credential::Sha512 { salt, hash })
        } else {
            Err("unknown hash format (expected $7$ or $6$)")
        }
    }

    /// Whether `password` matches.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Credential::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA512,
                *iterations,
                salt,
                password,
                hash,
            )
            .is_ok(),
            Credential::Sha512 { salt, hash } => {
                let mut ctx = digest::Context::new(&digest::SHA512);
                ctx.update(password);
                ctx.update(salt);
                constant_time_eq(ctx.finish().as_ref(), hash)
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `user` can be stored in the file.
pub fn valid_user_name(user: &str) -> bool {
    !user.is_empty() && !user.contains([':', '\n', '\r'])
}

/// A loaded password file, in file order.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    entries: Vec<(Box<str>, Credential)>,
    index: HashMap<Box<str>, usize>,
}

impl PasswordFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses file text.
    pub fn parse(text: &str) -> Result<PasswordFile, PasswdError> {
        let mut f = PasswordFile::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |why| PasswdError::Syntax { line: i + 1, why };
            let (user, cred) = line.split_once(':').ok_or(syntax("expected user:hash"))?;
            if !valid_user_name(user) {
                return Err(syntax("empty user name"));
            }
            if f.index.contains_key(user) {
                return Err(syntax("user listed twice"));
            }
            let cred = Credential::parse(cred).map_err(syntax)?;
            f.set(user, cred)?;
        }
        Ok(f)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| PasswdError::Io {
            path: path.display().to_string(),
            source,
        })?;
        PasswordFile::parse(&text)
    }

    /// The credential of `user`.
    pub fn get(&self, user: &str) -> Option<&Credential> {
        self.index.get(user).map(|&i| &self.entries[i].1)
    }

    /// Adds `user` or replaces its credential (keeping its place in the file).
    pub fn set(&mut self, user: &str, cred: Credential) -> Result<(), PasswdError> {
        if !valid_user_name(user) {
            return Err(PasswdError::BadUserName);
        }
        match self.index.get(user) {
            Some(&i) => self.entries[i].1 = cred,
            None => {
                self.index.insert(user.into(), self.entries.len());
                self.entries.push((user.into(), cred));
            }
        }
        Ok(())
    }

    /// Removes `user`; true if it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(i) = self.index.remove(user) else {
            return false;
        };
        self.entries.remove(i);
        for v in self.index.values_mut() {
            if *v > i {
                *v -= 1;
            }
        }
        true
    }

    /// Users in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(u, _)| &**u)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True with no users.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the file atomically (temporary file + rename), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), PasswdError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let io = |source| PasswdError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(self.to_string().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

impl fmt::Display for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (user, cred) in &self.entries {
            writeln!(f, "{user}:{cred}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iters(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
    }

    #[test]
    fn hash_verify_roundtrip_through_text() {
        let Ok(c) = Credential::hash(b"s3cret", iters(DEFAULT_ITERATIONS)) else {
            panic!("hashing failed")
        };
        let text = c.to_string();
        assert!(text.starts_with("$7$101$"), "{text}");
        let Ok(back) = Credential::parse(&text) else {
            panic!("cannot parse {text}")
        };
        assert_eq!(back, c);
        assert!(back.verify(b"s3cret"));
        assert!(!back.verify(b"s3cret "));
        assert!(!back.verify(b""));
    }

    #[test]
    fn salts_differ() {
        let a = Credential::hash(b"p", iters(1)).map(|c| c.to_string());
        let b = Credential::hash(b"p", iters(1)).map(|c| c.to_string());
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a.ok(), b.ok());
    }

    #[test]
    fn sha512_legacy_format() {
        let salt = b"0123456789ab".to_vec();
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(b"pw");
        ctx.update(&salt);
        let hash = ctx.finish().as_ref().to_vec();
        let line = format!("u:$6${}${}\n", B64.encode(&salt), B64.encode(&hash));
        let Ok(f) = PasswordFile::parse(&line) else {
            panic!("parse")
        };
        assert!(f.get("u").is_some_and(|c| c.verify(b"pw")));
        assert!(f.get("u").is_some_and(|c| !c.verify(b"pW")));
    }

    #[test]
    fn file_errors_name_the_line() {
        let good = Credential::hash(b"x", iters(1))
            .map(|c| c.to_string())
            .unwrap_or_default();
        let cases = [
            format!("# c\n\nnocolon\n"),
            format!("a:{good}\na:{good}\n"),
            format!(":{good}\n"),
            "a:$7$0$AAAA$AAAA\n".to_owned(),
            "a:$7$99999999999$AAAA$AAAA\n".to_owned(),
            "a:$5$x$y\n".to_owned(),
            "a:$7$101$!!$AAAA\n".to_owned(),
            "a:$7$101$AAAA$AAAA\n".to_owned(),
        ];
        for text in cases {
            match PasswordFile::parse(&text) {
                Err(PasswdError::Syntax { line, .. }) => assert!(line >= 1),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn set_remove_keep_order_and_save() {
        let mut f = PasswordFile::new();
        for u in ["a", "b", "c"] {
            let c = Credential::hash(u.as_bytes(), iters(1));
            assert!(c.is_ok_and(|c| f.set(u, c).is_ok()));
        }
        assert!(f.remove("b"));
        assert!(!f.remove("b"));
        assert_eq!(f.users().collect::<Vec<_>>(), ["a", "c"]);
        assert!(f.get("c").is_some_and(|c| c.verify(b"c")));
        assert!(matches!(
            f.set(
                "x:y",
                Credential::Sha512 {
                    salt: vec![1],
                    hash: vec![0; 64]
                }
            ),
            Err(PasswdError::BadUserName)
        ));
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else { panic!("tempdir") };
        let path = dir.path().join("pw");
        assert!(f.save(&path).is_ok());
        let loaded = PasswordFile::load(&path);
        assert!(loaded.is_ok_and(|l| l.to_string() == f.to_string()));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
    }
}
