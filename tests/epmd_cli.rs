//! The client side of the command line: `beamq epmd -names|-dump|-kill|-stop` must print what
//! OTP's `epmd` prints, against either daemon, and the flags parse as C's do.
mod epmd_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use epmd_support::*;

fn beamq_epmd(args: &[&str]) -> Output {
    let mut full = vec!["epmd"];
    full.extend_from_slice(args);
    run(&beamq_bin(), &full)
}

fn c_epmd(args: &[&str]) -> Output {
    run(Path::new(C_EPMD), args)
}

fn assert_same(label: &str, ours: &Output, theirs: &Output) {
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout),
        "{label}: stdout"
    );
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr),
        String::from_utf8_lossy(&theirs.stderr),
        "{label}: stderr"
    );
    assert_eq!(
        ours.status.code(),
        theirs.status.code(),
        "{label}: exit status"
    );
}

macro_rules! need_c_epmd {
    () => {
        if !have_c_epmd() {
            eprintln!("SKIP: {C_EPMD} not installed (scripts/test-all installs erlang-nox)");
            return;
        }
    };
}

#[test]
fn names_and_dump_print_the_same_against_both_daemons() {
    need_c_epmd!();
    for daemon in [start_c(&[]), start_beamq(&[])] {
        let p = daemon.port.to_string();
        let (_a, _) = register(daemon.port, &alive2_body(b"alpha", 6001, 6, b""));
        let (_b, _) = register(daemon.port, &alive2_body("bétà".as_bytes(), 6002, 6, b""));
        let (gone, _) = register(daemon.port, &alive2_body(b"gone", 6003, 6, b""));
        drop(gone);
        wait_names(daemon.port, |n| !n.contains("gone"));
        for args in [["-port", &p, "-names"], ["-port", &p, "-started"]] {
            assert_same(
                &format!("{} {args:?}", daemon.name),
                &beamq_epmd(&args),
                &c_epmd(&args),
            );
        }
        let ours = beamq_epmd(&["-port", &p, "-names"]);
        let text = String::from_utf8_lossy(&ours.stdout);
        assert!(
            text.starts_with(&format!("epmd: up and running on port {p} with data:\n")),
            "{text}"
        );
        assert!(
            text.contains("name bétà at port 6002\n") && text.contains("name alpha at port 6001\n")
        );
        // DUMP's fd numbers are the daemon's own: equal output when both clients ask one daemon.
        let dump = ["-port", &p, "-dump"];
        assert_same(
            &format!("{} -dump", daemon.name),
            &beamq_epmd(&dump),
            &c_epmd(&dump),
        );
        assert!(
            beamq_epmd(&dump).stdout.windows(4).any(|w| w == b"\n\0ol"),
            "dump keeps NULs"
        );
    }
}

#[test]
fn kill_and_stop_print_the_same_strict_and_relaxed() {
    need_c_epmd!();
    for relaxed in [false, true] {
        let flags: &[&str] = if relaxed {
            &["-relaxed_command_check"]
        } else {
            &[]
        };
        let mut transcripts = Vec::new();
        for (daemon, client) in [(start_c(flags), "c"), (start_beamq(flags), "beamq")] {
            let p = daemon.port.to_string();
            let (_node, _) = register(daemon.port, &alive2_body(b"node", 6001, 6, b""));
            let mut daemon = daemon;
            let steps: Vec<Vec<&str>> = vec![
                vec!["-port", &p, "-stop", "nosuch"],
                vec!["-port", &p, "-stop", "node"],
                vec!["-port", &p, "-kill"],
            ];
            let mut t = Vec::new();
            for args in &steps {
                let out = if client == "c" {
                    c_epmd(args)
                } else {
                    beamq_epmd(args)
                };
                t.push((out.stdout, out.stderr, out.status.code()));
            }
            if relaxed {
                assert!(
                    daemon
                        .exited_within(std::time::Duration::from_secs(5))
                        .is_some(),
                    "killed"
                );
            }
            transcripts.push(t);
        }
        assert_eq!(transcripts[0], transcripts[1], "relaxed={relaxed}");
    }
}

#[test]
fn no_daemon_messages_and_status_match() {
    need_c_epmd!();
    let p = free_port().to_string();
    for args in [
        vec!["-port", &p, "-names"],
        vec!["-port", &p, "-dump"],
        vec!["-port", &p, "-kill"],
        vec!["-port", &p, "-stop", "x"],
        vec!["-port", &p, "-started"],
    ] {
        assert_same(&format!("{args:?}"), &beamq_epmd(&args), &c_epmd(&args));
    }
}

#[test]
fn usage_text_and_status_match() {
    need_c_epmd!();
    for args in [
        vec!["-bogus"],
        vec!["-port"],
        vec!["-port", "0"],
        vec!["-names", "extra"],
        vec!["-packet_timeout", "x"],
        vec!["-stop"],
    ] {
        assert_same(&format!("{args:?}"), &beamq_epmd(&args), &c_epmd(&args));
    }
}

#[test]
fn symlink_named_epmd_behaves_as_beamq_epmd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let link: PathBuf = dir.path().join("epmd");
    std::os::unix::fs::symlink(beamq_bin(), &link).expect("symlink");
    let daemon = start_with(&link, &[], "beamq-symlink", &[]);
    let (_n, resp) = register(daemon.port, &alive2_body(b"viasymlink", 6001, 6, b""));
    assert_eq!(&resp[..2], &[118, 0]);
    let p = daemon.port.to_string();
    let out = run(&link, &["-port", &p, "-names"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("epmd: up and running on port {p} with data:\nname viasymlink at port 6001\n")
    );
    assert!(out.status.success());
}

#[test]
fn erl_epmd_port_env_selects_the_port() {
    let daemon = start_beamq(&[]);
    let out = std::process::Command::new(beamq_bin())
        .args(["epmd", "-names"])
        .env("ERL_EPMD_PORT", daemon.port.to_string())
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("on port {}", daemon.port)));
}
