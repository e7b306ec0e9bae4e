//! The CLI pointed at an untrusted peer and a shared exchange directory (issue #12 items 2, 7,
//! 9–15): a peer's bytes never reach the terminal as control sequences, hostile directory
//! entries are skipped and reported without stopping the others, a committed send that could
//! not be exported says so with exit code 3, `receive --stdin` processes every line, a
//! mistyped `--db` creates nothing, the demo honours the key, messages come from stdin or a
//! file, times are readable, loose file modes and plaintext databases are flagged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{connected_pair, entries, json_lines, libchat, stderr, stdout};

/// What a peer could use to rewrite the screen or the window title, or to disguise text: OSC
/// (set the title) ended by BEL, CSI (clear the screen), a carriage return (overwrite the
/// line), an 8-bit CSI (U+009B), a right-to-left override; plus a tab and a newline, which
/// stay.
const EVIL: &str =
    "hi \x1b]0;pwned\x07 \x1b[2J\rfake line \u{9b}31m \u{202e}txt.exe\n\tsecond line";

/// True when `text` holds a character a terminal or a bidi renderer would interpret, other
/// than newline and tab.
fn has_control(text: &str) -> bool {
    text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

/// The `.env` files in `dir/exchange`.
fn envelope_files(dir: &Path) -> Vec<String> {
    entries(&dir.join("exchange"))
        .into_iter()
        .filter(|n| n.ends_with(".env"))
        .collect()
}

#[test]
fn escape_sequences_from_a_peer_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    for _ in 0..3 {
        libchat(d, &["--db", "saro.db", "send", &saro_convo, EVIL]).ok();
    }
    let files = envelope_files(d);
    assert_eq!(files.len(), 3);

    // Human output (the default): escaped, newline and tab kept.
    let exchange = d.join("exchange");
    let keep_aside = d.join("aside");
    std::fs::create_dir(&keep_aside).unwrap();
    for f in &files[1..] {
        std::fs::rename(exchange.join(f), keep_aside.join(f)).unwrap();
    }
    let out = libchat(d, &["--db", "raya.db", "receive"]).ok();
    assert!(
        !has_control(&out),
        "raw control characters reached stdout: {out:?}"
    );
    assert!(out.contains("\\x1b]0;pwned\\x07"), "{out}");
    assert!(
        out.contains("\\x1b[2J\\x0dfake line \\u{9b}31m \\u{202e}txt.exe"),
        "{out}"
    );
    assert!(out.contains("\n  \tsecond line"), "{out}");

    // --raw: byte-exact, for a pipe.
    std::fs::rename(keep_aside.join(&files[1]), exchange.join(&files[1])).unwrap();
    let out = libchat(d, &["--db", "raya.db", "receive", "--raw"]).ok();
    assert!(out.contains(EVIL), "{out:?}");

    // --json: the exact content, JSON-escaped (no raw control character on the line).
    std::fs::rename(keep_aside.join(&files[2]), exchange.join(&files[2])).unwrap();
    let out = libchat(d, &["--db", "raya.db", "--json", "receive"]).ok();
    assert!(!has_control(out.trim_end()), "{out:?}");
    let got = json_lines(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], EVIL);

    // A content line never passes for a record of its own: continuation lines are indented.
    libchat(
        d,
        &[
            "--db",
            "saro.db",
            "send",
            &saro_convo,
            "hi\n[c0ffee] from someone else",
        ],
    )
    .ok();
    let out = libchat(d, &["--db", "raya.db", "receive"]).ok();
    assert!(out.lines().all(|l| !l.starts_with("[c0ffee]")), "{out}");
    assert!(out.contains("\n  [c0ffee] from someone else"), "{out}");

    // history and list: the same rules.
    let out = libchat(d, &["--db", "raya.db", "history", &raya_convo]).ok();
    assert!(!has_control(&out), "history: {out:?}");
    assert_eq!(out.matches("\\x1b]0;pwned\\x07").count(), 3, "{out}");
    let out = libchat(d, &["--db", "raya.db", "history", &raya_convo, "--raw"]).ok();
    assert_eq!(out.matches(EVIL).count(), 3, "{out:?}");
    let history = libchat(d, &["--db", "raya.db", "--json", "history", &raya_convo]).json();
    assert_eq!(history.len(), 5);
    assert!(history[1..4].iter().all(|h| h["message"] == EVIL));
    let out = libchat(d, &["--db", "raya.db", "list"]).ok();
    assert!(!has_control(&out), "list: {out:?}");
    // --raw and --json do not mix.
    let out = libchat(
        d,
        &["--db", "raya.db", "--json", "history", &raya_convo, "--raw"],
    )
    .output();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn hostile_entries_in_the_exchange_directory_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    libchat(
        d,
        &["--db", "saro.db", "send", &saro_convo, "after the traps"],
    )
    .ok();
    let ex = d.join("exchange");
    let name = |n: u32| format!("{raya_convo}.{n:020}-0.env");
    // A directory, a FIFO (opening it for reading would block), a symlink to a file outside
    // the exchange directory, garbage, an oversized file, a file named with an escape sequence.
    std::fs::create_dir(ex.join(name(0))).unwrap();
    let fifo = ex.join(name(1));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(d.join("secret.txt"), "not for the exchange").unwrap();
    std::os::unix::fs::symlink(d.join("secret.txt"), ex.join(name(2))).unwrap();
    std::fs::write(ex.join(name(3)), "garbage").unwrap();
    std::fs::write(ex.join(name(4)), vec![0u8; 256 * 1024 + 1]).unwrap();
    let evil_name = format!("{raya_convo}.\x1b]0;owned\x07.env");
    std::fs::write(ex.join(&evil_name), "junk").unwrap();

    let out = libchat(d, &["--db", "raya.db", "receive"]).output();
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{o}\n{e}");
    assert!(o.contains("after the traps"), "{o}\n{e}");
    assert!(!has_control(&o) && !has_control(&e), "{o:?}\n{e:?}");
    for n in 0..3 {
        assert!(
            e.lines()
                .any(|l| l.contains(&name(n)) && l.contains("not a regular file")),
            "{} not reported as skipped:\n{e}",
            name(n)
        );
    }
    for n in 3..5 {
        assert!(
            e.lines()
                .any(|l| l.contains(&name(n)) && l.contains("rejected")),
            "{} not reported as rejected:\n{e}",
            name(n)
        );
        assert!(!ex.join(name(n)).exists());
        assert!(
            ex.join(format!("{}.rejected", name(n).trim_end_matches(".env")))
                .is_file()
        );
    }
    assert!(e.contains("\\x1b]0;owned\\x07"), "{e}");
    // Skipped entries are left alone.
    assert!(ex.join(name(0)).is_dir());
    assert_eq!(
        std::fs::read_to_string(d.join("secret.txt")).unwrap(),
        "not for the exchange"
    );
    assert!(
        std::fs::symlink_metadata(ex.join(name(2)))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // A second run reports the skipped ones again (JSON events), and nothing else.
    let events = libchat(d, &["--db", "raya.db", "--json", "receive"]).json();
    let skipped: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "skipped")
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(skipped.len(), 3, "{events:?}");
    for n in 0..3 {
        assert!(skipped.iter().any(|s| s.ends_with(&name(n))), "{events:?}");
    }
    assert!(events.iter().all(|e| e["event"] == "skipped"), "{events:?}");
}

#[test]
fn a_send_committed_but_not_exported_exits_3_and_flush_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    // An exchange "directory" below a regular file cannot be created.
    std::fs::write(d.join("blocker"), "").unwrap();
    let out = libchat(
        d,
        &[
            "--db",
            "saro.db",
            "send",
            &saro_convo,
            "queued one",
            "--exchange",
            "blocker/ex",
        ],
    )
    .output();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let e = stderr(&out);
    assert!(e.contains("queued in the outbox"), "{e}");
    assert!(e.contains("libchat flush"), "{e}");
    assert!(
        e.contains("blocker/ex"),
        "the error names the directory: {e}"
    );

    // The JSON form says the same on stdout.
    let out = libchat(
        d,
        &[
            "--db",
            "saro.db",
            "--json",
            "send",
            &saro_convo,
            "queued two",
            "--exchange",
            "blocker/ex",
        ],
    )
    .output();
    assert_eq!(out.status.code(), Some(3));
    let report = &json_lines(&stdout(&out))[0];
    assert_eq!(report["queued"], true, "{report}");
    assert_eq!(report["conversation"], saro_convo.as_str());

    // Nobody re-sends: `flush` exports both, and each arrives once.
    let flushed = libchat(d, &["--db", "saro.db", "--json", "flush"]).json();
    assert_eq!(flushed[0]["delivered"], 2);
    let got = libchat(d, &["--db", "raya.db", "--json", "receive"]).json();
    let texts: Vec<&str> = got.iter().map(|v| v["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["queued one", "queued two"]);
    let history = libchat(d, &["--db", "raya.db", "--json", "history", &raya_convo]).json();
    assert_eq!(history.len(), 3);

    // connect: the conversation exists and is named, its handshake waits in the outbox.
    let bundle = libchat(d, &["--db", "raya.db", "--json", "intro"]).json()[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = libchat(
        d,
        &[
            "--db",
            "saro.db",
            "connect",
            &bundle,
            "second hello",
            "--exchange",
            "blocker/ex",
        ],
    )
    .output();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("queued in the outbox") && e.contains("libchat flush"),
        "{e}"
    );
    let list = libchat(d, &["--db", "saro.db", "--json", "list"]).json();
    assert_eq!(list.len(), 2);
    let new_convo = list
        .iter()
        .map(|c| c["conversation"].as_str().unwrap())
        .find(|c| *c != saro_convo)
        .unwrap();
    assert!(e.contains(new_convo), "the conversation id is given: {e}");
}

#[test]
fn receive_stdin_processes_every_line_and_reports_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, _) = connected_pair(d, "hello");
    libchat(d, &["--db", "saro.db", "send", &saro_convo, "first"]).ok();
    libchat(d, &["--db", "saro.db", "send", &saro_convo, "second"]).ok();
    let files = envelope_files(d);
    let hex_of = |f: &str| hex::encode(std::fs::read(d.join("exchange").join(f)).unwrap());
    // A handshake for somebody else: no conversation for its hint.
    libchat(d, &["--db", "eve.db", "init", "--name", "eve"]).ok();
    let eve_bundle = libchat(d, &["--db", "eve.db", "--json", "intro"]).json()[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    libchat(
        d,
        &[
            "--db",
            "saro.db",
            "connect",
            &eve_bundle,
            "to eve",
            "--exchange",
            "eve-ex",
        ],
    )
    .ok();
    let to_eve = entries(&d.join("eve-ex"));
    let to_eve = hex::encode(std::fs::read(d.join("eve-ex").join(&to_eve[0])).unwrap());
    let input = format!(
        "{}\nnot hex at all\ndeadbeef\n\n{}\n{}\n{to_eve}\n",
        hex_of(&files[0]),
        hex_of(&files[1]),
        hex_of(&files[0]),
    );

    let events = libchat(d, &["--db", "raya.db", "--json", "receive", "--stdin"])
        .stdin(input.clone())
        .json();
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("message", "stdin line 1"),
        ("rejected", "stdin line 2"),
        ("rejected", "stdin line 3"),
        ("message", "stdin line 5"),
        ("duplicate", "stdin line 6"),
        ("unknown_conversation", "stdin line 7"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(summary, expected, "{events:?}");
    assert_eq!(events[0]["message"], "first");
    assert_eq!(events[3]["message"], "second");

    // Human output: every bad line named, nothing claims to be "kept".
    let out = libchat(d, &["--db", "raya.db", "receive", "--stdin"])
        .stdin(input)
        .output();
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("kept"), "{all}");
    for line in [2, 3, 6, 7] {
        assert!(all.contains(&format!("stdin line {line}")), "{all}");
    }
}

#[test]
fn a_mistyped_db_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let commands: &[&[&str]] = &[
        &["whoami"],
        &["intro"],
        &["list"],
        &["send", "c0ffee", "text"],
        &["connect", "logos_chatintro_1_AAAA", "hi"],
        &["receive"],
        &["receive", "--stdin"],
        &["flush"],
        &["history", "c0ffee"],
        &["db", "status"],
        &["db", "migrate"],
    ];
    for command in commands {
        let mut args = vec!["--db", "typo.db"];
        args.extend_from_slice(command);
        let out = libchat(d, &args).output();
        assert!(!out.status.success(), "{command:?} succeeded");
        assert!(
            stderr(&out)
                .contains("no database at typo.db (create one with `libchat --db typo.db init`)"),
            "{command:?}: {}",
            stderr(&out)
        );
        assert!(!d.join("typo.db").exists(), "{command:?} created the file");
    }
    // An empty file is no database either.
    std::fs::write(d.join("empty.db"), "").unwrap();
    let out = libchat(d, &["--db", "empty.db", "whoami"]).output();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no database at empty.db"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(d.join("empty.db")).unwrap().len(), 0);

    // Options without a command: an error, not the demo.
    let out = libchat(d, &["--db", "typo.db"]).output();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no command"), "{}", stderr(&out));
    assert!(!d.join("typo.db").exists());
    assert!(
        entries(d).iter().all(|e| e == "empty.db"),
        "{:?}",
        entries(d)
    );

    // init creates; a second init keeps the identity and says so.
    let first = libchat(d, &["--db", "me.db", "init", "--name", "raya"]).ok();
    assert!(first.contains("raya"), "{first}");
    let again = libchat(d, &["--db", "me.db", "init", "--name", "bob"]).ok();
    assert!(again.contains("kept") && again.contains("raya"), "{again}");
    let json = libchat(d, &["--db", "me.db", "--json", "init", "--name", "bob"]).json();
    assert_eq!(json[0]["created"], false);
    assert_eq!(json[0]["name"], "raya");
    assert_eq!(json[0]["name_kept"], true);
    let who = libchat(d, &["--db", "me.db", "--json", "whoami"]).json();
    assert_eq!(who[0]["name"], "raya");
}

#[test]
fn the_demo_encrypts_both_databases_with_the_given_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("k"), "demo passphrase\n").unwrap();
    let summary = libchat(
        d,
        &[
            "--key-file",
            "k",
            "--json",
            "demo",
            "--messages",
            "20",
            "--dir",
            "run",
        ],
    )
    .json();
    assert_eq!(summary[0]["messages_received"], 20);
    assert_eq!(summary[0]["encrypted"], true);
    for db in ["run/saro.db", "run/raya.db"] {
        let header = std::fs::read(d.join(db)).unwrap();
        assert_ne!(&header[..16], b"SQLite format 3\0", "{db} is plaintext");
        let who = libchat(d, &["--db", db, "--key-file", "k", "--json", "whoami"]).json();
        assert!(who[0]["name"] == "saro" || who[0]["name"] == "raya");
        let out = libchat(d, &["--db", db, "whoami"]).output();
        assert!(!out.status.success(), "{db} opened without its key");
    }
    // --key-env too.
    let summary = libchat(
        d,
        &[
            "--key-env",
            "DEMO_KEY",
            "--json",
            "demo",
            "--messages",
            "4",
            "--dir",
            "run2",
        ],
    )
    .env("DEMO_KEY", "another passphrase")
    .json();
    assert_eq!(summary[0]["encrypted"], true);
    assert_ne!(
        &std::fs::read(d.join("run2/raya.db")).unwrap()[..16],
        b"SQLite format 3\0"
    );
    // --db means nothing to the demo: refused rather than ignored.
    let out = libchat(d, &["--db", "mine.db", "demo", "--messages", "4"]).output();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--db"), "{}", stderr(&out));
    assert!(!d.join("mine.db").exists());
}

#[test]
fn messages_come_from_stdin_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    libchat(d, &["--db", "saro.db", "send", &saro_convo, "-"])
        .stdin("from a dash\n")
        .ok();
    libchat(d, &["--db", "saro.db", "send", &saro_convo])
        .stdin("from plain stdin\n")
        .ok();
    // Bytes that are not UTF-8, larger than an argument list allows.
    let mut bytes = vec![0xff, 0x00, b'a', 0x1b];
    bytes.extend(std::iter::repeat_n(b'x', 200_000));
    std::fs::write(d.join("msg.bin"), &bytes).unwrap();
    libchat(
        d,
        &["--db", "saro.db", "send", &saro_convo, "--file", "msg.bin"],
    )
    .ok();
    let got = libchat(d, &["--db", "raya.db", "--json", "receive"]).json();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0]["message"], "from a dash");
    assert_eq!(got[1]["message"], "from plain stdin");
    assert_eq!(got[2]["message_hex"], hex::encode(&bytes));
    // Human output shows the bytes that are not UTF-8 escaped.
    let out = libchat(d, &["--db", "raya.db", "history", &raya_convo]).ok();
    assert!(
        out.contains("\\xff\\x00a\\x1bxxx"),
        "{}",
        &out[..out.len().min(500)]
    );

    // Refused before anything is committed: both a message and --file, an empty message, a
    // message over the limit.
    let out = libchat(
        d,
        &[
            "--db",
            "saro.db",
            "send",
            &saro_convo,
            "text",
            "--file",
            "msg.bin",
        ],
    )
    .output();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = libchat(d, &["--db", "saro.db", "send", &saro_convo, "-"])
        .stdin("")
        .output();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    std::fs::write(d.join("big.bin"), vec![b'y'; libchat::MAX_CONTENT_LEN + 1]).unwrap();
    let out = libchat(
        d,
        &["--db", "saro.db", "send", &saro_convo, "--file", "big.bin"],
    )
    .output();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("too long"), "{}", stderr(&out));
    let history = libchat(d, &["--db", "saro.db", "--json", "history", &saro_convo]).json();
    assert_eq!(history.len(), 4);
}

/// True when `text` holds an RFC 3339 time with the offset `offset` (e.g. `+05:30`).
fn has_rfc3339_with_offset(text: &str, offset: &str) -> bool {
    text.match_indices(offset).any(|(i, _)| {
        let Some(start) = i.checked_sub(19) else {
            return false;
        };
        let t = &text.as_bytes()[start..i];
        let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
        digits.iter().all(|&k| t[k].is_ascii_digit())
            && t[4] == b'-'
            && t[7] == b'-'
            && t[10] == b'T'
            && t[13] == b':'
            && t[16] == b':'
    })
}

#[test]
fn list_and_history_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    libchat(d, &["--db", "lonely.db", "init"]).ok();
    let out = libchat(d, &["--db", "lonely.db", "list"]).ok();
    assert!(out.contains("no conversations"), "{out}");
    assert!(
        libchat(d, &["--db", "lonely.db", "--json", "list"])
            .json()
            .is_empty()
    );

    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    libchat(d, &["--db", "raya.db", "send", &raya_convo, "hi back"]).ok();
    libchat(d, &["--db", "saro.db", "receive"]).ok();
    // Each side shows who the conversation is with: the first 8 bytes of the other's key.
    let public_key = |db: &str| -> String {
        libchat(d, &["--db", db, "--json", "whoami"]).json()[0]["public_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (saro_key, raya_key) = (public_key("saro.db"), public_key("raya.db"));
    assert_eq!(raya_key.len(), 64);
    let raya_peer = format!("peer {}…", &raya_key[..16]);
    let saro_peer = format!("peer {}…", &saro_key[..16]);
    let out = libchat(d, &["--db", "saro.db", "list"])
        .env("TZ", "Asia/Kolkata")
        .ok();
    assert!(out.contains(&saro_convo), "{out}");
    assert!(out.contains(&raya_peer), "list: {out}");
    assert!(!out.contains(&raya_key), "list shows a prefix only: {out}");
    assert!(has_rfc3339_with_offset(&out, "+05:30"), "list: {out}");
    assert!(!out.contains("created 1"), "epoch milliseconds: {out}");
    let out = libchat(d, &["--db", "raya.db", "list"]).ok();
    assert!(
        out.contains(&raya_convo) && out.contains(&saro_peer),
        "{out}"
    );
    let out = libchat(d, &["--db", "saro.db", "history", &saro_convo])
        .env("TZ", "Asia/Kolkata")
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[0],
        format!("conversation {saro_convo} with {raya_peer}")
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| has_rfc3339_with_offset(l, "+05:30")),
        "{out}"
    );
    assert!(
        lines[1].contains("hello") && lines[2].contains("hi back"),
        "{out}"
    );
    let out = libchat(d, &["--db", "raya.db", "history", &raya_convo]).ok();
    assert_eq!(
        out.lines().next().unwrap(),
        format!("conversation {raya_convo} with {saro_peer}")
    );
    // --raw prints the records only.
    let out = libchat(d, &["--db", "saro.db", "history", &saro_convo, "--raw"]).ok();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(!out.contains("peer"), "{out}");
    let json = libchat(d, &["--db", "saro.db", "--json", "list"])
        .env("TZ", "Asia/Kolkata")
        .json();
    assert!(has_rfc3339_with_offset(
        json[0]["created_at"].as_str().unwrap(),
        "+05:30"
    ));
    assert!(json[0]["created_at_ms"].as_i64().unwrap() > 0);
    assert_eq!(json[0]["peer_key"], raya_key.as_str(), "the full key");
    let json = libchat(d, &["--db", "raya.db", "--json", "list"]).json();
    assert_eq!(json[0]["peer_key"], saro_key.as_str());
    let json = libchat(d, &["--db", "saro.db", "--json", "history", &saro_convo]).json();
    assert_eq!(json.len(), 2, "no header record in JSON: {json:?}");
    assert!(json.iter().all(|h| h["peer_key"] == raya_key.as_str()));
}

#[test]
fn db_status_warns_about_files_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    libchat(d, &["--db", "me.db", "init"]).ok();
    let status = libchat(d, &["--db", "me.db", "db", "status"]).output();
    assert!(status.status.success());
    assert!(!stderr(&status).contains("warning"), "{}", stderr(&status));
    let json = libchat(d, &["--db", "me.db", "--json", "db", "status"]).json();
    assert_eq!(json[0]["permission_warnings"], serde_json::json!([]));

    let set = |name: &str, mode: u32| {
        std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set("me.db", 0o644);
    std::fs::write(d.join("me.db-wal"), "").unwrap();
    set("me.db-wal", 0o660);
    let out = libchat(d, &["--db", "me.db", "db", "status"]).output();
    assert!(out.status.success(), "{}", stderr(&out));
    let warnings: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("me.db ") && warnings[0].contains("0644"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("me.db-wal") && warnings[1].contains("0660"),
        "{warnings:?}"
    );
    // (SQLite removes an empty -wal when the last connection closes: make it again.)
    std::fs::write(d.join("me.db-wal"), "").unwrap();
    set("me.db-wal", 0o660);
    let out = libchat(d, &["--db", "me.db", "--json", "db", "status"]).output();
    let json = &json_lines(&stdout(&out))[0];
    let listed = json["permission_warnings"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{json}");
    assert!(listed[0]["path"].as_str().unwrap().ends_with("me.db"));
    assert_eq!(listed[0]["mode"], "0644");
    assert_eq!(listed[1]["mode"], "0660");
    assert_eq!(
        stderr(&out)
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .count(),
        2
    );

    set("me.db", 0o600);
    let _ = std::fs::remove_file(d.join("me.db-wal"));
    let out = libchat(d, &["--db", "me.db", "db", "status"]).output();
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// Lines of `text` that warn about an unencrypted database.
fn plaintext_warnings(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("warning:") && l.contains("not encrypted"))
        .count()
}

#[test]
fn creating_an_unencrypted_database_is_flagged_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = libchat(d, &["--db", "a.db", "init"]).output();
    assert!(out.status.success());
    assert_eq!(plaintext_warnings(&stderr(&out)), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("--plain"), "{}", stderr(&out));
    // Only when it is created.
    let out = libchat(d, &["--db", "a.db", "whoami"]).output();
    assert_eq!(plaintext_warnings(&stderr(&out)), 0, "{}", stderr(&out));
    // An explicit choice silences it.
    for flag in ["--plain", "--insecure-plaintext"] {
        let db = format!("{}.db", flag.trim_start_matches('-'));
        let out = libchat(d, &[flag, "--db", &db, "init"]).output();
        assert!(out.status.success());
        assert_eq!(plaintext_warnings(&stderr(&out)), 0, "{}", stderr(&out));
        assert!(d.join(&db).is_file());
    }
    // A key: nothing to warn about; a key and --plain contradict each other.
    std::fs::write(d.join("k"), "passphrase\n").unwrap();
    let out = libchat(d, &["--key-file", "k", "--db", "b.db", "init"]).output();
    assert_eq!(plaintext_warnings(&stderr(&out)), 0, "{}", stderr(&out));
    let out = libchat(d, &["--plain", "--key-file", "k", "--db", "c.db", "init"]).output();
    assert_eq!(out.status.code(), Some(2));
    assert!(!d.join("c.db").exists());
    // The demo's databases, when kept in --dir.
    let out = libchat(d, &["demo", "--messages", "4", "--dir", "run"]).output();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(plaintext_warnings(&stderr(&out)), 1, "{}", stderr(&out));
    let out = libchat(d, &["--plain", "demo", "--messages", "4", "--dir", "run2"]).output();
    assert_eq!(plaintext_warnings(&stderr(&out)), 0, "{}", stderr(&out));
}

#[test]
fn a_handshake_and_its_follow_ups_arrive_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    libchat(d, &["--db", "raya.db", "init", "--name", "raya"]).ok();
    libchat(d, &["--db", "saro.db", "init", "--name", "saro"]).ok();
    let bundle = libchat(d, &["--db", "raya.db", "--json", "intro"]).json()[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = libchat(d, &["--db", "saro.db", "--json", "connect", &bundle, "one"]).json();
    let convo = started[0]["conversation"].as_str().unwrap().to_owned();
    for text in ["two", "three"] {
        libchat(d, &["--db", "saro.db", "send", &convo, text]).ok();
    }
    let got = libchat(d, &["--db", "raya.db", "--json", "receive"]).json();
    let texts: Vec<&str> = got.iter().map(|v| v["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["one", "two", "three"], "{got:?}");
    assert!(envelope_files(d).is_empty(), "{:?}", envelope_files(d));
}

/// Runs `libchat ARGS` in `dir` with its stdin, stdout and stderr on a pseudo-terminal
/// (`script` from util-linux); returns the exit code and everything written to the terminal.
fn on_a_terminal(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_libchat");
    let quoted: Vec<String> = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let out = std::process::Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .env_remove("LIBCHAT_DB")
        .env_remove("LIBCHAT_EXCHANGE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (util-linux)");
    (out.status.code(), stdout(&out))
}

#[test]
fn on_a_terminal_raw_is_refused_and_a_large_backlog_shows_progress() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, raya_convo) = connected_pair(d, "hello");
    let (code, text) = on_a_terminal(d, &["--db", "raya.db", "history", &raya_convo, "--raw"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("standard output is a terminal"), "{text}");
    // A backlog of 320 envelopes: a progress bar on the terminal, none with --json.
    let mut saro = libchat::Client::open(libchat::ClientConfig::new(
        libchat::DatabaseConfig::file(d.join("saro.db")),
        "saro",
    ))
    .unwrap();
    for n in 0..320 {
        saro.send(&saro_convo, format!("backlog {n}").as_bytes())
            .unwrap();
    }
    drop(saro);
    libchat(d, &["--db", "saro.db", "flush"]).ok();
    let (code, text) = on_a_terminal(d, &["--db", "raya.db", "receive"]);
    assert_eq!(
        code,
        Some(0),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    assert!(text.contains("receiving ["), "no progress bar");
    assert!(text.contains("backlog 319"));
    libchat(d, &["--db", "saro.db", "send", &saro_convo, "one more"]).ok();
    let (_, text) = on_a_terminal(d, &["--db", "raya.db", "--json", "receive"]);
    assert!(!text.contains("receiving ["), "{text}");
}

#[test]
fn content_received_but_not_shown_is_shown_by_the_next_receive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (saro_convo, _) = connected_pair(d, "hello");
    libchat(d, &["--db", "saro.db", "send", &saro_convo, "interrupted"]).ok();
    // A receive interrupted after the commit, before the content was shown and acknowledged.
    let file = envelope_files(d).remove(0);
    let envelope = std::fs::read(d.join("exchange").join(&file)).unwrap();
    let mut raya = libchat::Client::open(libchat::ClientConfig::new(
        libchat::DatabaseConfig::file(d.join("raya.db")),
        "raya",
    ))
    .unwrap();
    assert!(matches!(
        raya.receive(&envelope).unwrap(),
        libchat::Received::Content { .. }
    ));
    drop(raya);
    let out = libchat(d, &["--db", "raya.db", "receive"]).ok();
    assert!(out.contains("(received earlier) interrupted"), "{out}");
    assert!(
        !d.join("exchange").join(&file).exists(),
        "the duplicate file is removed"
    );
    // Shown once: acknowledged now.
    let out = libchat(d, &["--db", "raya.db", "receive"]).ok();
    assert!(!out.contains("interrupted"), "{out}");
}
