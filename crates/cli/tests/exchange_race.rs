//! Two processes sending into one exchange directory at once, from one database (two
//! terminals of the same installation): each `libchat send` flushes the whole outbox, so both
//! write the same envelopes at the same time. Every send must succeed (a failure after the
//! commit invites a re-send, i.e. a duplicate), every envelope must land exactly once under its
//! final name, and no temporary file may be left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use common::{connected_pair, entries, libchat, stderr};

const SENDS_PER_PROCESS: usize = 200;

#[test]
fn two_processes_send_into_one_exchange_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (saro_convo, _) = connected_pair(&d, "hello");

    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|tag| {
            let d = d.clone();
            let convo = saro_convo.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for n in 0..SENDS_PER_PROCESS {
                    let text = format!("{tag} {n:03}");
                    let out = libchat(&d, &["--db", "saro.db", "send", &convo, &text]).output();
                    if !out.status.success() {
                        failures.push(format!("{text}: {:?} {}", out.status.code(), stderr(&out)));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed sends: {failures:#?}",
        failures.len()
    );

    let names = entries(&d.join("exchange"));
    let leftovers: Vec<&String> = names.iter().filter(|n| !n.ends_with(".env")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(names.len(), 2 * SENDS_PER_PROCESS);
    // Nothing waits in the outbox.
    let flushed = libchat(&d, &["--db", "saro.db", "--json", "flush"]).json();
    assert_eq!(flushed[0]["delivered"], 0);

    let got = libchat(&d, &["--db", "raya.db", "--json", "receive"]).json();
    let texts: Vec<String> = got
        .iter()
        .map(|v| {
            assert_eq!(v["event"], "message", "{v}");
            v["message"].as_str().unwrap().to_owned()
        })
        .collect();
    let distinct: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(distinct.len(), texts.len(), "duplicates received");
    let expected: BTreeSet<String> = ["a", "b"]
        .iter()
        .flat_map(|tag| (0..SENDS_PER_PROCESS).map(move |n| format!("{tag} {n:03}")))
        .collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected
    );
    assert!(entries(&d.join("exchange")).is_empty());
}
