//! `beamq passwd`: manages a password file as `mosquitto_passwd` does.
//!
//! ```text
//! beamq passwd [-c] [-I ITERATIONS] FILE USER [PASSWORD]   add or update USER
//! beamq passwd -D FILE USER                                delete USER
//! ```
//! `-c` creates (or overwrites) FILE. Without PASSWORD it is asked for twice on the terminal
//! (echo off), or read as one line from standard input when that is not a terminal. `-b` is
//! accepted for mosquitto_passwd's batch mode, where PASSWORD is then required.

use std::ffi::OsString;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::num::NonZeroU32;
use std::path::PathBuf;

use super::passwd::{
    valid_user_name, Credential, PasswordFile, DEFAULT_ITERATIONS, MAX_ITERATIONS,
};

const USAGE: &str = "usage: beamq passwd [-c] [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n       beamq passwd -D FILE USER\n";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    create: bool,
    delete: bool,
    batch: bool,
    iterations: NonZeroU32,
    file: PathBuf,
    user: String,
    password: Option<String>,
}

fn parse(args: Vec<OsString>) -> Result<Args, String> {
    let mut flags_done = false;
    let (mut create, mut delete, mut batch) = (false, false, false);
    let mut iterations = DEFAULT_ITERATIONS;
    let mut positional = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let a = a
            .into_string()
            .map_err(|_| "arguments must be UTF-8".to_owned())?;
        match a.as_str() {
            "-c" if !flags_done => create = true,
            "-D" if !flags_done => delete = true,
            "-b" if !flags_done => batch = true,
            "-I" if !flags_done => {
                let n = it.next().and_then(|n| n.into_string().ok());
                iterations = n
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                    .ok_or(format!("-I needs a count from 1 to {MAX_ITERATIONS}"))?;
            }
            "--" if !flags_done => flags_done = true,
            "-h" | "--help" if !flags_done => return Err(String::new()),
            f if !flags_done && f.starts_with('-') && f.len() > 1 => {
                return Err(format!("unknown option {f}"))
            }
            _ => {
                flags_done = true;
                positional.push(a);
            }
        }
    }
    if create && delete {
        return Err("-c and -D cannot be used together".into());
    }
    let mut pos = positional.into_iter();
    let (Some(file), Some(user)) = (pos.next(), pos.next()) else {
        return Err("FILE and USER are required".into());
    };
    let password = pos.next();
    if pos.next().is_some() || (delete && password.is_some()) {
        return Err("too many arguments".into());
    }
    if batch && password.is_none() && !delete {
        return Err("-b needs PASSWORD".into());
    }
    if !valid_user_name(&user) {
        return Err("user name must be non-empty, without ':' or line breaks".into());
    }
    Ok(Args {
        create,
        delete,
        batch,
        iterations: NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
        file: PathBuf::from(file),
        user,
        password,
    })
}

/// Reads one line from the terminal with echo off (termios), restoring it afterwards.
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let fd = libc::STDIN_FILENO;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    // SAFETY: termios is plain data; tcgetattr fills it or fails, and we only call tcsetattr
    // with a value tcgetattr produced.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if have_tty {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.map_err(|e| format!("reading password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn read_password() -> Result<String, String> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading password: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_owned());
    }
    let first = prompt_hidden("Password: ")?;
    let again = prompt_hidden("Reenter password: ")?;
    if first != again {
        return Err("passwords do not match".into());
    }
    Ok(first)
}

fn run(args: Args) -> Result<(), String> {
    let mut file = if args.create {
        PasswordFile::new()
    } else {
        PasswordFile::load(&args.file).map_err(|e| e.to_string())?
    };
    if args.delete {
        if !file.remove(&args.user) {
            return Err(format!("user {} not found", args.user));
        }
    } else {
        let password = match args.password {
            Some(p) => p,
            None => read_password()?,
        };
        let cred =
            Credential::hash(password.as_bytes(), args.iterations).map_err(|e| e.to_string())?;
        file.set(&args.user, cred).map_err(|e| e.to_string())?;
    }
    file.save(&args.file).map_err(|e| e.to_string())
}

/// Entry point; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match parse(args).and_then(run) {
        Ok(()) => 0,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("beamq passwd: {msg}");
            }
            eprint!("{USAGE}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_mosquitto_passwd_forms() {
        let a = parse(args(&["-c", "f", "u", "p"]));
        assert!(a
            .as_ref()
            .is_ok_and(|a| a.create && a.password.as_deref() == Some("p")));
        let a = parse(args(&["-b", "-I", "1000", "f", "u", "p"]));
        assert!(a
            .as_ref()
            .is_ok_and(|a| a.batch && a.iterations.get() == 1000));
        assert!(parse(args(&["-D", "f", "u"])).is_ok_and(|a| a.delete));
        for bad in [
            &["f"][..],
            &["-c", "-D", "f", "u"],
            &["-D", "f", "u", "p"],
            &["-b", "f", "u"],
            &["-x", "f", "u"],
            &["-I", "0", "f", "u", "p"],
            &["f", "a:b", "p"],
            &["f", "u", "p", "extra"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_update_delete() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("tempdir")
        };
        let f = dir.path().join("pw");
        let fs = f.to_string_lossy().to_string();
        assert_eq!(main(args(&["-c", &fs, "alice", "one"])), 0);
        assert_eq!(main(args(&[&fs, "bob", "two"])), 0);
        assert_eq!(main(args(&[&fs, "alice", "three"])), 0);
        let Ok(pw) = PasswordFile::load(&f) else {
            panic!("load")
        };
        assert_eq!(pw.users().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(pw.get("alice").is_some_and(|c| c.verify(b"three")));
        assert_eq!(main(args(&["-D", &fs, "alice"])), 0);
        assert_eq!(main(args(&["-D", &fs, "alice"])), 1);
        let missing = dir.path().join("none").to_string_lossy().to_string();
        assert_eq!(
            main(args(&[&missing, "u", "p"])),
            1,
            "no -c on a missing file"
        );
    }
}
