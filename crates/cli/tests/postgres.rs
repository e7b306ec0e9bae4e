//! The CLI on PostgreSQL (feature `postgres`) against a real server: two installations of one
//! database (`--database-url-env`, `--installation`, a 64-hex key) start a conversation
//! through an exchange directory and answer each other; `list`, `history`, `db status`,
//! `db migrate`, `db installations` work; an unknown installation outside `init`, a passphrase
//! key, a missing key and `--db` with a URL are refused.
//!
//! `bash .ci/postgres bash -c 'CI=true cargo test -p libchat-cli --features postgres --test
//! postgres'`: without `LIBCHAT_TEST_POSTGRES_URL` it fails under `CI=true`.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{json_lines, libchat, stderr};
use persistence::postgres::testing::{TestDb, server_url};

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn two_installations_chat_through_the_cli_on_postgresql() {
    let Some(server) = server_url() else { return };
    let db = TestDb::new(&server, "cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |installation: &str, args: &[&str]| {
        let mut all = vec![
            "--database-url-env",
            "RELAY_URL",
            "--key-env",
            "RELAY_KEY",
            "--installation",
            installation,
            "--json",
        ];
        all.extend_from_slice(args);
        libchat(dir.path(), &all)
            .env("RELAY_URL", db.url())
            .env("RELAY_KEY", KEY)
    };
    let saro = run("saro", &["init", "--name", "Saro"]).json();
    assert_eq!(saro[0]["name"], "Saro");
    let raya = run("raya", &["init", "--name", "Raya"]).json();
    assert_ne!(saro[0]["public_key"], raya[0]["public_key"]);

    let bundle = run("raya", &["intro"]).json()[0]["bundle"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = run("saro", &["connect", &bundle, "hello raya"]).json();
    let saro_convo = started[0]["conversation"].as_str().unwrap().to_owned();
    let received = run("raya", &["receive"]).ok();
    assert!(received.contains("hello raya"), "{received}");
    let listed = run("raya", &["list"]).json();
    assert_eq!(listed.len(), 1);
    let raya_convo = listed[0]["conversation"]
        .as_str()
        .or_else(|| listed[0]["id"].as_str())
        .unwrap()
        .to_owned();
    run("raya", &["send", &raya_convo, "hello saro"]).ok();
    let received = run("saro", &["receive"]).ok();
    assert!(received.contains("hello saro"), "{received}");
    let history = run("saro", &["history", &saro_convo]).ok();
    assert!(
        history.contains("hello raya") && history.contains("hello saro"),
        "{history}"
    );
    run("saro", &["flush"]).ok();

    let status = json_lines(&run("saro", &["db", "status"]).ok());
    assert_eq!(status[0]["state"], "up to date");
    let migrated = run("saro", &["db", "migrate"]).json();
    assert_eq!(migrated[0]["applied"], serde_json::json!([]));
    let installations = json_lines(&run("saro", &["db", "installations"]).ok());
    let names: Vec<_> = installations.iter().map(|i| i["name"].clone()).collect();
    // `default` exists in every database (the migration chain creates it).
    assert_eq!(names, vec!["default", "saro", "raya"]);

    // Only `init` creates an installation: another command refuses an unknown one, and
    // creates nothing.
    let unknown = run("nobody", &["list"]).output();
    assert_eq!(unknown.status.code(), Some(1), "{}", stderr(&unknown));
    let error = json_lines(&String::from_utf8_lossy(&unknown.stdout));
    let message = error[0]["error"].as_str().unwrap_or_default();
    assert!(message.contains("no installation \"nobody\""), "{error:?}");
    let installations = json_lines(&run("saro", &["db", "installations"]).ok());
    assert_eq!(installations.len(), 3);

    // A passphrase is refused, and so is a missing key, and --db with a URL: usage errors.
    let refused = libchat(
        dir.path(),
        &[
            "--database-url-env",
            "RELAY_URL",
            "--key-env",
            "RELAY_KEY",
            "list",
        ],
    )
    .env("RELAY_URL", db.url())
    .env("RELAY_KEY", "correct horse battery staple")
    .output();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("64 hexadecimal"));
    let refused = libchat(dir.path(), &["--database-url-env", "RELAY_URL", "list"])
        .env("RELAY_URL", db.url())
        .output();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    let refused = libchat(
        dir.path(),
        &["--db", "x.db", "--database-url-env", "RELAY_URL", "list"],
    )
    .output();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}
