//! The `libchat` binary: the demo runs with no arguments' defaults and reports every message;
//! a scripted two-party chat through files works; bad arguments give clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};

fn libchat(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_libchat"))
        .current_dir(dir)
        .args(args)
        .env_remove("LIBCHAT_DB")
        .env_remove("LIBCHAT_EXCHANGE")
        .env_remove("LIBCHAT_INSTALLATION")
        .output()
        .expect("run libchat")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = libchat(dir, args);
    assert!(
        out.status.success(),
        "libchat {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn demo_reports_every_message_received() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &["demo", "--messages", "120", "--json", "--dir", "run"],
    );
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["messages_sent"], 120);
    assert_eq!(summary["messages_received"], 120);
    assert!(summary["out_of_order_deliveries"].as_u64().unwrap() > 0);
    assert!(summary["duplicates_refused"].as_u64().unwrap() > 0);
    assert!(summary["saro_db_bytes"].as_u64().unwrap() > 0);
    assert!(dir.path().join("run/saro.db").is_file());
    // The demo refuses to reuse a directory that already holds its databases.
    let again = libchat(dir.path(), &["demo", "--dir", "run"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn demo_runs_with_no_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(dir.path(), &[]);
    assert!(out.contains("1000 sent, 1000 received"), "{out}");
}

#[test]
fn two_party_file_chat_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("raya.key"), "raya passphrase\n").unwrap();
    let raya = ["--db", "raya.db", "--key-file", "raya.key", "--json"];
    let saro = ["--db", "saro.db", "--json"];
    let with = |base: &[&str], rest: &[&str]| -> Vec<String> {
        base.iter().chain(rest).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| -> Vec<serde_json::Value> {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        json_lines(&ok(d, &refs))
    };

    run(with(&raya, &["init", "--name", "raya"]));
    run(with(&saro, &["init", "--name", "saro"]));
    let bundle = run(with(&raya, &["intro"]))[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(bundle.starts_with("logos_chatintro_1_"));
    let started = run(with(&saro, &["connect", &bundle, "hello from saro"]));
    let saro_convo = started[0]["conversation"].as_str().unwrap().to_owned();
    assert_eq!(started[0]["delivered"], 1);

    // Saro does not pick up his own envelope.
    assert!(run(with(&saro, &["receive"])).is_empty());
    let got = run(with(&raya, &["receive"]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "hello from saro");
    assert_eq!(got[0]["new_conversation"], true);
    let raya_convo = got[0]["conversation"].as_str().unwrap().to_owned();

    run(with(&raya, &["send", &raya_convo, "hi saro"]));
    run(with(&raya, &["send", &raya_convo, "how are you?"]));
    let got = run(with(&saro, &["receive"]));
    let texts: Vec<&str> = got.iter().map(|v| v["message"].as_str().unwrap()).collect();
    assert_eq!(texts, ["hi saro", "how are you?"]);
    // Nothing left: envelopes are removed once received.
    assert!(run(with(&saro, &["receive"])).is_empty());

    let list = run(with(&saro, &["list"]));
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["conversation"], saro_convo.as_str());
    let history = run(with(&saro, &["history", &saro_convo]));
    let lines: Vec<(String, String)> = history
        .iter()
        .map(|v| {
            (
                v["direction"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("sent".to_owned(), "hello from saro".to_owned()),
            ("received".to_owned(), "hi saro".to_owned()),
            ("received".to_owned(), "how are you?".to_owned()),
        ]
    );

    let status = run(with(&raya, &["db", "status"]));
    assert_eq!(status[0]["state"], "up to date");
    // Raya's database is encrypted: without the key it is refused with a clear error.
    let out = libchat(d, &["--db", "raya.db", "list"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_arguments_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["--db", "x.db", "--plain", "init"]);
    let out = libchat(d, &["--db", "x.db", "send", "nope", "text"]);
    assert!(!out.status.success());
    let out = libchat(
        d,
        &["--db", "x.db", "connect", "logos_chatintro_1_AAAA", "hi"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("intro bundle"));
    let out = libchat(
        d,
        &[
            "--db",
            "x.db",
            "--key-env",
            "LIBCHAT_TEST_UNSET_VAR",
            "list",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("LIBCHAT_TEST_UNSET_VAR"));
    let out = libchat(d, &["--db", "missing.db", "db", "status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at missing.db"));
    let out = libchat(d, &["--db", "x.db", "history", "nope"]);
    assert!(!out.status.success());
}

/// Every database of the reference vectors (`legacy/manifest.json`, whatever it lists) is
/// imported through the binary, into an encrypted target.
#[test]
fn import_a_reference_database_through_the_binary() {
    let manifest = support::load_json("legacy/manifest.json");
    let vectors = support::vectors_dir().join("legacy");
    let mut imported = 0;
    for variant in manifest["variants"].as_array().unwrap() {
        for db in variant["dbs"].as_array().unwrap() {
            import_through_the_binary(&vectors, db);
            imported += 1;
        }
    }
    assert!(imported > 0, "the manifest lists no database");
}

fn import_through_the_binary(vectors: &Path, db: &serde_json::Value) {
    let file = db["file"].as_str().unwrap();
    let counts = &db["db_info"]["row_counts"];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = vectors.join(file);
    let source = source.to_str().unwrap();
    std::fs::write(d.join("new.key"), "a new passphrase\n").unwrap();
    let mut args = vec![
        "--json",
        "--key-file",
        "new.key",
        "import",
        "--from",
        source,
        "--to",
        "new.db",
    ];
    // The source's passphrase, where it is encrypted.
    let passphrase = db["key"].as_str();
    if let Some(passphrase) = passphrase {
        std::fs::write(d.join("old.key"), format!("{passphrase}\n")).unwrap();
        args.extend(["--from-key-file", "old.key"]);
    }
    let report = &json_lines(&ok(d, &args))[0];
    assert_eq!(report["outcome"], "imported", "{file}");
    assert_eq!(report["conversations"], counts["conversations"], "{file}");
    assert_eq!(report["skipped_keys"], counts["skipped_keys"], "{file}");
    // Running it again is safe: the target already holds this import.
    let again = &json_lines(&ok(d, &args))[0];
    assert_eq!(again["outcome"], "already_imported", "{file}");
    // The imported database works with the CLI (and needs its new key).
    let list = json_lines(&ok(
        d,
        &["--db", "new.db", "--key-file", "new.key", "--json", "list"],
    ));
    assert_eq!(
        Some(u64::try_from(list.len()).unwrap()),
        counts["conversations"].as_u64(),
        "{file}"
    );
    // The reference never stored the peer's key: unknown, said so.
    assert!(list.iter().all(|c| c["peer_key"].is_null()), "{file}");
    if let Some(first) = list.first() {
        let convo = first["conversation"].as_str().unwrap();
        let human = ok(d, &["--db", "new.db", "--key-file", "new.key", "list"]);
        assert!(human.contains("unknown peer"), "{human}");
        let human = ok(
            d,
            &["--db", "new.db", "--key-file", "new.key", "history", convo],
        );
        assert_eq!(
            human.lines().next().unwrap(),
            format!("conversation {convo} with unknown peer")
        );
        let history = json_lines(&ok(
            d,
            &[
                "--db",
                "new.db",
                "--key-file",
                "new.key",
                "--json",
                "history",
                convo,
            ],
        ));
        assert!(history.iter().all(|h| h["peer_key"].is_null()));
    }
    // A wrong source key (or a key for a plain source) is a clear error, and nothing is
    // written.
    std::fs::write(d.join("bad.key"), "nope\n").unwrap();
    let out = libchat(
        d,
        &[
            "import",
            "--from",
            source,
            "--to",
            "other.db",
            "--from-key-file",
            "bad.key",
        ],
    );
    assert!(!out.status.success(), "{file}");
    assert!(!d.join("other.db").exists(), "{file}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(stderr.contains("key"), "{file}: {stderr}");
}

/// Two installations of one database file chat with each other through the exchange
/// directory (`--installation`, and `LIBCHAT_INSTALLATION` for the second); each lists only
/// its own conversation; `db installations` lists both (plain and `--json`); an installation
/// that was never initialised and a bad name are refused.
#[test]
fn installations_share_one_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("shared.key"), "shared passphrase\n").unwrap();
    let base = ["--db", "shared.db", "--key-file", "shared.key", "--json"];
    let run = |extra: &[&str], env: Option<&str>| -> Vec<serde_json::Value> {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_libchat"));
        command
            .current_dir(d)
            .args(&args)
            .env_remove("LIBCHAT_DB")
            .env_remove("LIBCHAT_EXCHANGE")
            .env_remove("LIBCHAT_INSTALLATION");
        if let Some(name) = env {
            command.env("LIBCHAT_INSTALLATION", name);
        }
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "libchat {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&String::from_utf8(out.stdout).unwrap())
    };
    let raya = |rest: &[&str]| {
        let mut args = vec!["--installation", "raya"];
        args.extend_from_slice(rest);
        run(&args, None)
    };
    let saro = |rest: &[&str]| run(rest, Some("saro"));

    let raya_id = raya(&["init", "--name", "raya"]);
    let saro_id = saro(&["init", "--name", "saro"]);
    assert_eq!(raya_id[0]["name"], "raya");
    assert_eq!(saro_id[0]["name"], "saro");
    assert_ne!(raya_id[0]["public_key"], saro_id[0]["public_key"]);
    // A new installation in an existing file is created; an existing one is kept.
    assert_eq!(raya_id[0]["created"], true);
    assert_eq!(saro_id[0]["created"], true);
    let again = saro(&["init", "--name", "other"]);
    assert_eq!(again[0]["created"], false);
    assert_eq!(again[0]["name_kept"], true);
    assert_eq!(again[0]["public_key"], saro_id[0]["public_key"]);
    assert_eq!(saro(&["whoami"])[0]["name"], "saro");

    let bundle = raya(&["intro"])[0]["bundle"].as_str().unwrap().to_owned();
    let started = saro(&["connect", &bundle, "hello from saro"]);
    let saro_convo = started[0]["conversation"].as_str().unwrap().to_owned();
    let got = raya(&["receive"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "hello from saro");
    let raya_convo = got[0]["conversation"].as_str().unwrap().to_owned();
    raya(&["send", &raya_convo, "hi saro"]);
    let got = saro(&["receive"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["message"], "hi saro");

    let raya_list = raya(&["list"]);
    let saro_list = saro(&["list"]);
    assert_eq!(raya_list.len(), 1);
    assert_eq!(saro_list.len(), 1);
    assert_eq!(raya_list[0]["conversation"], raya_convo.as_str());
    assert_eq!(saro_list[0]["conversation"], saro_convo.as_str());
    // The default installation of the file sees neither conversation.
    assert!(run(&["list"], None).is_empty());

    let listed = run(&["db", "installations"], None);
    let names: Vec<&str> = listed.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "raya", "saro"]);
    assert!(
        listed
            .iter()
            .all(|v| v["created_at_ms"].as_i64().unwrap() > 0)
    );
    let plain = ok(
        d,
        &[
            "--db",
            "shared.db",
            "--key-file",
            "shared.key",
            "db",
            "installations",
        ],
    );
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 3, "{plain}");
    assert!(lines[1].starts_with("raya  created "), "{plain}");
    assert!(lines[2].starts_with("saro  created "), "{plain}");

    // An installation that was never initialised is refused, and nothing is created.
    let out = libchat(
        d,
        &[
            "--db",
            "shared.db",
            "--key-file",
            "shared.key",
            "--installation",
            "ravi",
            "list",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no installation \"ravi\""), "{stderr}");
    assert_eq!(run(&["db", "installations"], None).len(), 3);
    // A bad name is a usage error (exit 2).
    for bad in ["", "a\tb"] {
        let out = libchat(d, &["--db", "shared.db", "--installation", bad, "list"]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--installation"), "{stderr}");
    }
}
