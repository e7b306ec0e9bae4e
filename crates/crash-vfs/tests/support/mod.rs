//! The power-loss sweep: a two-installation workload through `libchat::Client` on the
//! crash-simulating VFS, the checks after each power loss, and the sweep driver.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crash_vfs::{Crash, CrashVfs, CutPlan, Flaw};
use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use domain_chat::ChatError;
use libchat::{Acknowledged, Delivered, Direction};
use libchat::{Client, ClientConfig, ClientError, Received};
use persistence::{Database, DatabaseConfig, DatabaseKey, Durability, MigrationMode};

pub const SARO: usize = 0;
pub const RAYA: usize = 1;
pub const NAMES: [&str; 2] = ["saro", "raya"];

/// The raw SQLCipher key of the encrypted runs (a raw key: no PBKDF2 on every open).
pub const RAW_KEY: [u8; 32] = [0x42; 32];

/// Plain or encrypted, Full or Normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Combo {
    pub encrypted: bool,
    pub durability: Durability,
}

impl Combo {
    pub const ALL: [Combo; 4] = [
        Combo {
            encrypted: false,
            durability: Durability::Full,
        },
        Combo {
            encrypted: true,
            durability: Durability::Full,
        },
        Combo {
            encrypted: false,
            durability: Durability::Normal,
        },
        Combo {
            encrypted: true,
            durability: Durability::Normal,
        },
    ];

    pub fn label(self) -> String {
        format!(
            "{}-{}",
            if self.encrypted { "sqlcipher" } else { "plain" },
            match self.durability {
                Durability::Full => "full",
                Durability::Normal => "normal",
            }
        )
    }

    pub fn parse(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.label() == label)
    }

    /// The database of `party` in `dir`, on the default VFS.
    pub fn config(self, dir: &Path, party: usize) -> DatabaseConfig {
        self.config_at(&dir.join(format!("{}.db", NAMES[party])))
    }

    /// The configuration of this combination for the database file at `path`.
    pub fn config_at(self, path: &Path) -> DatabaseConfig {
        let config = DatabaseConfig::file(path).with_durability(self.durability);
        if self.encrypted {
            config.with_key(DatabaseKey::Raw(RAW_KEY))
        } else {
            config
        }
    }
}

/// A fresh directory for one run: on tmpfs when there is one (`fsync` is free there; the
/// VFS decides durability itself), else the default temporary directory.
pub fn run_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("crash-vfs-")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------------------------------
// Logical dumps and checks
// ---------------------------------------------------------------------------------------

#[derive(diesel::QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(db: &mut Database, sql: &str) -> Result<Vec<String>, String> {
    diesel::sql_query(sql)
        .load::<Line>(db.raw_connection())
        .map(|rows| rows.into_iter().map(|l| l.line).collect())
        .map_err(|e| format!("{sql}: {e}"))
}

/// A logical dump: the schema and every row of every table (AUTOINCREMENT counters in
/// `sqlite_sequence` included), rows sorted. Equal dumps = same content.
pub fn dump(db: &mut Database) -> Result<Vec<String>, String> {
    let mut out = lines(
        db,
        "SELECT type || ' ' || name || ': ' || coalesce(sql, '') AS line FROM sqlite_master ORDER BY type, name",
    )?;
    let tables = lines(
        db,
        "SELECT name AS line FROM sqlite_master WHERE type = 'table' AND (name NOT LIKE 'sqlite_%' OR name = 'sqlite_sequence') ORDER BY name",
    )?;
    for table in tables {
        let columns: Vec<String> = lines(
            db,
            &format!("SELECT name AS line FROM pragma_table_info('{table}') ORDER BY cid"),
        )?
        .into_iter()
        .map(|c| format!("quote(\"{c}\")"))
        .collect();
        out.extend(lines(
            db,
            &format!(
                "SELECT '{table}: ' || {} AS line FROM \"{table}\" ORDER BY line",
                columns.join(" || '|' || ")
            ),
        )?);
    }
    Ok(out)
}

/// Opens a database on the default VFS without migrating, checks `integrity_check` and
/// `foreign_key_check`, and dumps it.
pub fn check_and_dump(config: DatabaseConfig) -> Result<Vec<String>, String> {
    let location = config.location().to_string();
    let mut db = Database::open(config.with_migrations(MigrationMode::Skip))
        .map_err(|e| format!("{location} does not open after the power loss: {e}"))?;
    let integrity = lines(
        &mut db,
        "SELECT integrity_check AS line FROM pragma_integrity_check()",
    )?;
    if integrity != ["ok"] {
        return Err(format!("{location}: integrity_check: {integrity:?}"));
    }
    let fk = lines(
        &mut db,
        "SELECT \"table\" || ' rowid ' || coalesce(rowid, 'NULL') || ' -> ' || parent AS line FROM pragma_foreign_key_check()",
    )?;
    if !fk.is_empty() {
        return Err(format!("{location}: foreign_key_check: {fk:?}"));
    }
    dump(&mut db)
}

/// Whether an error is the store failing (never acceptable after recovery) rather than the
/// protocol refusing input (a typed refusal, acceptable where the durability allows it).
pub fn is_store_failure(error: &ClientError) -> bool {
    match error {
        ClientError::Database(_) | ClientError::Store(_) => true,
        ClientError::Chat(ChatError::Store(_)) => true,
        ClientError::Chat(ChatError::Handshake(h)) => h.to_string().contains("store"),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

/// One step of the workload. Steps on the database are one Client operation each (or, for
/// `CreateDb`, one `Database::open`); `Publish` is the application handing envelopes to the
/// transport (no I/O).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `Database::open` of a new file (migrations), kept open until `Open`.
    CreateDb(usize),
    /// `Client::open` (creates the identity).
    Open(usize),
    /// Raya creates and publishes an intro bundle.
    Bundle,
    /// Saro starts the conversation; `publish`: the envelope goes to the transport at once.
    Start { publish: bool },
    /// A message in the conversation.
    Send { from: usize, publish: bool },
    /// The application hands every unpublished envelope of `from` to the transport.
    Publish(usize),
    /// Marks the oldest published envelope of `from` delivered.
    MarkDelivered(usize),
    /// Receives the `skip`-th envelope (0 = oldest) not yet received by `to`.
    Receive { to: usize, skip: usize },
    /// Receives again the last envelope `to` received (a duplicate: nothing is written).
    Duplicate(usize),
    /// Acknowledges the oldest unacknowledged inbox entry of `to`.
    Ack(usize),
    /// Closes and reopens the Client (a checkpoint on close).
    Reopen(usize),
    /// `PRAGMA wal_checkpoint(PASSIVE)` on the Client's connection: what SQLite's automatic
    /// checkpoint runs after a commit once the WAL holds 1,000 pages (which this short
    /// workload never reaches). The next commit then restarts the WAL from its start.
    Checkpoint(usize),
    /// `Client::sync`, after which the application tells the transport it may delete every
    /// envelope whose receive returned Ok before (the rule for Normal durability; with Full
    /// the transport deletes an envelope as soon as its receive returns Ok, and `sync` does
    /// nothing).
    Sync(usize),
}

impl Step {
    /// The step's kind, for the figures.
    pub fn kind(self) -> &'static str {
        match self {
            Step::CreateDb(_) => "CreateDb",
            Step::Open(_) => "Open",
            Step::Bundle => "Bundle",
            Step::Start { .. } => "Start",
            Step::Send { .. } => "Send",
            Step::Publish(_) => "Publish",
            Step::MarkDelivered(_) => "MarkDelivered",
            Step::Receive { .. } => "Receive",
            Step::Duplicate(_) => "Duplicate",
            Step::Ack(_) => "Ack",
            Step::Reopen(_) => "Reopen",
            Step::Checkpoint(_) => "Checkpoint",
            Step::Sync(_) => "Sync",
        }
    }

    /// Whether a power loss may never take the step back once it returned Ok, whatever the
    /// durability: its result left the process (the identity, an intro bundle, a handshake or
    /// a message), or it is `Client::sync`. (Also true of everything before it on the same
    /// installation.)
    pub fn is_durable_point(self) -> bool {
        matches!(
            self,
            Step::Open(_) | Step::Bundle | Step::Start { .. } | Step::Send { .. } | Step::Sync(_)
        )
    }

    /// The installation whose database the step touches (`None`: no database work).
    pub fn device(self) -> Option<usize> {
        match self {
            Step::CreateDb(d)
            | Step::Open(d)
            | Step::MarkDelivered(d)
            | Step::Reopen(d)
            | Step::Checkpoint(d)
            | Step::Sync(d) => Some(d),
            Step::Bundle => Some(RAYA),
            Step::Start { .. } => Some(SARO),
            Step::Send { from, .. } => Some(from),
            Step::Receive { to, .. } | Step::Duplicate(to) | Step::Ack(to) => Some(to),
            Step::Publish(_) => None,
        }
    }
}

/// The script: both databases created, the handshake, then rounds of sends (published at
/// once or in a batch), receives in and out of order, a duplicate, acknowledgements,
/// mark-delivered, syncs (each after some receives, some acknowledgements; other receives
/// are followed by a send, or by nothing), checkpoints and reopens.
pub fn script() -> Vec<Step> {
    use Step::*;
    let mut steps = vec![
        CreateDb(RAYA),
        CreateDb(SARO),
        Open(RAYA),
        Open(SARO),
        Bundle,
        Start { publish: true },
        MarkDelivered(SARO),
        Receive { to: RAYA, skip: 0 },
        Ack(RAYA),
        Sync(RAYA),
        Send {
            from: RAYA,
            publish: true,
        },
        MarkDelivered(RAYA),
        Receive { to: SARO, skip: 0 },
        Ack(SARO),
        Checkpoint(RAYA),
        // A batch of three, published together; received out of order, with a duplicate.
        Send {
            from: SARO,
            publish: false,
        },
        Send {
            from: SARO,
            publish: false,
        },
        Send {
            from: SARO,
            publish: false,
        },
        Publish(SARO),
        MarkDelivered(SARO),
        MarkDelivered(SARO),
        Receive { to: RAYA, skip: 1 },
        Receive { to: RAYA, skip: 0 },
        Duplicate(RAYA),
        MarkDelivered(SARO),
        Receive { to: RAYA, skip: 0 },
        Ack(RAYA),
        Sync(RAYA),
        Ack(RAYA),
        Ack(RAYA),
        // Raya answers twice (a DH ratchet step at Saro).
        Send {
            from: RAYA,
            publish: true,
        },
        Send {
            from: RAYA,
            publish: true,
        },
        MarkDelivered(RAYA),
        Receive { to: SARO, skip: 0 },
        MarkDelivered(RAYA),
        Ack(SARO),
        Receive { to: SARO, skip: 0 },
        Ack(SARO),
        Sync(SARO),
        Checkpoint(SARO),
        Send {
            from: SARO,
            publish: true,
        },
        Receive { to: RAYA, skip: 0 },
        MarkDelivered(SARO),
        Ack(RAYA),
        Reopen(SARO),
        Send {
            from: SARO,
            publish: true,
        },
        Receive { to: RAYA, skip: 0 },
        MarkDelivered(SARO),
        Ack(RAYA),
        Reopen(RAYA),
        Send {
            from: RAYA,
            publish: false,
        },
        Send {
            from: SARO,
            publish: true,
        },
        Publish(RAYA),
        Receive { to: SARO, skip: 0 },
        Receive { to: RAYA, skip: 0 },
        MarkDelivered(RAYA),
        MarkDelivered(SARO),
        Ack(SARO),
        Ack(RAYA),
    ];
    steps.shrink_to_fit();
    steps
}

/// The content of message `n` of `party`: unique, of varied length (some span several
/// 512-byte sectors, one spills to an overflow page).
pub fn content(party: usize, n: usize) -> Vec<u8> {
    let len = match n % 4 {
        0 => 40,
        1 => 700,
        2 => 1_900,
        _ => 5_000,
    };
    let mut text = format!("{} message {n} ", NAMES[party]).into_bytes();
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while text.len() < len {
        text.push(filler[text.len() % filler.len()]);
    }
    text
}

/// What one step did, for classifying what a power loss may take back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Nothing,
    /// An envelope carrying this content was queued.
    Sent(Vec<u8>),
    /// An intro bundle was created.
    Bundle,
    /// Content was received.
    Received(Vec<u8>),
    /// The identity was created (or the database).
    Created,
}

/// A step that ran.
#[derive(Debug, Clone)]
pub struct Done {
    pub index: usize,
    pub step: Step,
    pub effect: Effect,
    /// True if the step returned before the power failed.
    pub ok: bool,
}

/// An outbox entry not yet handed to the transport: (outbox id, envelope, content).
type Unpublished = (i64, Vec<u8>, Vec<u8>);

/// Contents of a history: (sent, received).
type Histories = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The application and the transport around two Clients.
pub struct App {
    pub combo: Combo,
    pub dir: PathBuf,
    pub vfs: Option<[String; 2]>,
    /// The cut of the run: once the power failed, the application stops acting on results
    /// (a call can return Ok after the cut when SQLite ignores the failure of a checkpoint).
    pub plan: Option<Arc<CutPlan>>,
    /// The deliberately broken library of `tests/broken.rs`: nothing synced in Normal
    /// (`DatabaseConfig::with_unsynced_outgoing`).
    pub unsynced_outgoing: bool,
    dbs: [Option<Database>; 2],
    clients: [Option<Client>; 2],
    /// Envelopes handed to the transport, per recipient (by index), deleted or not.
    pub network: [Vec<Vec<u8>>; 2],
    /// Indices of `network` the transport deleted, told so by the recipient: with Full when
    /// the receive returned Ok, with Normal at the first `Client::sync` after that.
    pub deleted: [BTreeSet<usize>; 2],
    /// Indices whose receive returned Ok, not yet deleted (Normal: waiting for a sync).
    awaiting_sync: [BTreeSet<usize>; 2],
    received: [BTreeSet<usize>; 2],
    last_received: [Option<usize>; 2],
    /// Outbox entries (id, envelope, content) not yet handed to the transport.
    unpublished: [Vec<Unpublished>; 2],
    /// Published, not yet marked delivered.
    unmarked: [VecDeque<i64>; 2],
    unacked: [VecDeque<i64>; 2],
    pub bundle: Option<String>,
    convo: [Option<String>; 2],
    next_message: [usize; 2],
    /// The content of the last send attempted.
    attempted: Option<Vec<u8>>,
    /// Contents whose send returned Ok.
    pub sent_ok: [Vec<Vec<u8>>; 2],
    /// Contents handed to the transport.
    pub published: [BTreeSet<Vec<u8>>; 2],
    /// Contents the application showed.
    pub shown: [Vec<Vec<u8>>; 2],
    pub done: Vec<Done>,
    /// The logical dump of each database after each of its steps that returned Ok; the first
    /// is the state before any (no database).
    pub snapshots: [Vec<(Option<usize>, Vec<String>)>; 2],
}

impl App {
    pub fn new(combo: Combo, dir: &Path, vfs: Option<[String; 2]>) -> Self {
        Self {
            combo,
            dir: dir.to_path_buf(),
            vfs,
            plan: None,
            unsynced_outgoing: false,
            dbs: [None, None],
            clients: [None, None],
            network: [Vec::new(), Vec::new()],
            deleted: [BTreeSet::new(), BTreeSet::new()],
            awaiting_sync: [BTreeSet::new(), BTreeSet::new()],
            received: [BTreeSet::new(), BTreeSet::new()],
            last_received: [None, None],
            unpublished: [Vec::new(), Vec::new()],
            unmarked: [VecDeque::new(), VecDeque::new()],
            unacked: [VecDeque::new(), VecDeque::new()],
            bundle: None,
            convo: [None, None],
            next_message: [0, 0],
            attempted: None,
            sent_ok: [Vec::new(), Vec::new()],
            published: [BTreeSet::new(), BTreeSet::new()],
            shown: [Vec::new(), Vec::new()],
            done: Vec::new(),
            snapshots: [vec![(None, Vec::new())], vec![(None, Vec::new())]],
        }
    }

    /// The database config of `party` (through its crash VFS while one is set).
    pub fn config(&self, party: usize) -> DatabaseConfig {
        let mut config = self.combo.config(&self.dir, party);
        if self.unsynced_outgoing {
            config = config.with_unsynced_outgoing();
        }
        match &self.vfs {
            Some(names) => config.with_vfs(names[party].clone()),
            None => config,
        }
    }

    fn client(&mut self, party: usize) -> Result<&mut Client, String> {
        self.clients[party]
            .as_mut()
            .ok_or_else(|| format!("{} has no client", NAMES[party]))
    }

    fn next_content(&mut self, party: usize) -> Vec<u8> {
        let n = self.next_message[party];
        self.next_message[party] += 1;
        let text = content(party, n);
        self.attempted = Some(text.clone());
        text
    }

    fn publish(&mut self, from: usize, envelope: Vec<u8>, content: Vec<u8>) {
        self.network[1 - from].push(envelope);
        self.published[from].insert(content);
    }

    /// Hands an envelope to the transport again (redelivering the outbox after a restart),
    /// unless the transport still holds it.
    fn republish(&mut self, from: usize, envelope: &[u8]) {
        let to = 1 - from;
        let held = self.network[to]
            .iter()
            .enumerate()
            .any(|(i, e)| e == envelope && !self.deleted[to].contains(&i));
        if !held {
            self.network[to].push(envelope.to_vec());
        }
    }

    /// The envelopes the transport holds for `to` (not deleted).
    fn held_for(&self, to: usize) -> Vec<Vec<u8>> {
        self.network[to]
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[to].contains(i))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// `Err` once the power has failed: a dead machine's application does nothing more.
    fn alive(&self) -> Result<(), String> {
        match &self.plan {
            Some(plan) if plan.fired() => Err("the power failed".into()),
            _ => Ok(()),
        }
    }

    /// Runs one step. `Ok(effect)` when it returned Ok; `Err` with the error otherwise.
    pub fn run_step(&mut self, step: Step) -> Result<Effect, String> {
        let effect = self.run_step_inner(step)?;
        self.alive()?;
        Ok(effect)
    }

    fn run_step_inner(&mut self, step: Step) -> Result<Effect, String> {
        match step {
            Step::CreateDb(d) => {
                let db = Database::open(self.config(d)).map_err(|e| e.to_string())?;
                self.alive()?;
                self.dbs[d] = Some(db);
                Ok(Effect::Created)
            }
            Step::Open(d) => {
                let client = Client::open(ClientConfig::new(self.config(d), NAMES[d]))
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                self.clients[d] = Some(client);
                self.dbs[d] = None;
                Ok(Effect::Created)
            }
            Step::Bundle => {
                let bundle = self
                    .client(RAYA)?
                    .create_intro_bundle()
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                self.bundle = Some(bundle);
                Ok(Effect::Bundle)
            }
            Step::Start { publish } => {
                let bundle = self.bundle.clone().ok_or("no bundle")?;
                let text = self.next_content(SARO);
                let sent = self
                    .client(SARO)?
                    .start_conversation(&bundle, &text)
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                self.convo[SARO] = Some(sent.conversation_id.clone());
                self.after_send(SARO, sent.outbox_id, sent.envelope.bytes, text, publish)
            }
            Step::Send { from, publish } => {
                let convo = self.convo[from].clone().ok_or("no conversation")?;
                let text = self.next_content(from);
                let sent = self
                    .client(from)?
                    .send(&convo, &text)
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                self.after_send(from, sent.outbox_id, sent.envelope.bytes, text, publish)
            }
            Step::Publish(from) => {
                for (id, envelope, text) in std::mem::take(&mut self.unpublished[from]) {
                    self.publish(from, envelope, text);
                    self.unmarked[from].push_back(id);
                }
                Ok(Effect::Nothing)
            }
            Step::MarkDelivered(from) => {
                let id = *self.unmarked[from].front().ok_or("nothing to mark")?;
                let was = self
                    .client(from)?
                    .mark_delivered(id)
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                if was == Delivered::NotPending {
                    return Err(format!("outbox entry {id} was not pending"));
                }
                self.unmarked[from].pop_front();
                Ok(Effect::Nothing)
            }
            Step::Receive { to, skip } => {
                let index = (0..self.network[to].len())
                    .filter(|i| !self.received[to].contains(i))
                    .nth(skip)
                    .ok_or("nothing to receive")?;
                let envelope = self.network[to][index].clone();
                let received = self
                    .client(to)?
                    .receive(&envelope)
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                self.received[to].insert(index);
                self.last_received[to] = Some(index);
                match self.combo.durability {
                    Durability::Full => self.deleted[to].insert(index),
                    Durability::Normal => self.awaiting_sync[to].insert(index),
                };
                match received {
                    Received::Content {
                        inbox_id,
                        conversation_id,
                        content,
                        ..
                    } => {
                        self.convo[to].get_or_insert(conversation_id);
                        self.unacked[to].push_back(inbox_id);
                        self.shown[to].push(content.clone());
                        Ok(Effect::Received(content))
                    }
                    other => Err(format!("expected content, got {other:?}")),
                }
            }
            Step::Duplicate(to) => {
                let index = self.last_received[to].ok_or("nothing received")?;
                let envelope = self.network[to][index].clone();
                match self
                    .client(to)?
                    .receive(&envelope)
                    .map_err(|e| e.to_string())?
                {
                    Received::Duplicate => Ok(Effect::Nothing),
                    other => Err(format!("expected a duplicate, got {other:?}")),
                }
            }
            Step::Ack(to) => {
                let id = *self.unacked[to].front().ok_or("nothing to acknowledge")?;
                let was = self
                    .client(to)?
                    .acknowledge(id)
                    .map_err(|e| e.to_string())?;
                self.alive()?;
                if was == Acknowledged::NotPending {
                    return Err(format!("inbox entry {id} was not pending"));
                }
                self.unacked[to].pop_front();
                Ok(Effect::Nothing)
            }
            Step::Checkpoint(d) => {
                use diesel::connection::SimpleConnection;
                self.client(d)?
                    .database()
                    .unwrap()
                    .raw_connection()
                    .batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                    .map_err(|e| e.to_string())?;
                Ok(Effect::Nothing)
            }
            Step::Sync(d) => {
                self.client(d)?.sync().map_err(|e| e.to_string())?;
                self.alive()?;
                let synced = std::mem::take(&mut self.awaiting_sync[d]);
                self.deleted[d].extend(synced);
                Ok(Effect::Nothing)
            }
            Step::Reopen(d) => {
                self.clients[d] = None;
                let client = Client::open(ClientConfig::new(self.config(d), NAMES[d]))
                    .map_err(|e| e.to_string())?;
                self.clients[d] = Some(client);
                Ok(Effect::Nothing)
            }
        }
    }

    fn after_send(
        &mut self,
        from: usize,
        outbox_id: i64,
        envelope: Vec<u8>,
        text: Vec<u8>,
        publish: bool,
    ) -> Result<Effect, String> {
        self.sent_ok[from].push(text.clone());
        if publish {
            self.publish(from, envelope, text.clone());
            self.unmarked[from].push_back(outbox_id);
        } else {
            self.unpublished[from].push((outbox_id, envelope, text.clone()));
        }
        Ok(Effect::Sent(text))
    }

    /// The logical dump of `party`'s database through its open handle.
    pub fn snapshot(&mut self, party: usize) -> Result<Vec<String>, String> {
        if let Some(client) = self.clients[party].as_mut() {
            return dump(client.database().unwrap());
        }
        if let Some(db) = self.dbs[party].as_mut() {
            return dump(db);
        }
        Err(format!("{} has no open database", NAMES[party]))
    }

    /// Closes every connection.
    pub fn close(&mut self) {
        self.clients = [None, None];
        self.dbs = [None, None];
    }

    /// The effect a step in flight would have had (for the classification of losses).
    fn planned_effect(&self, step: Step) -> Effect {
        match step {
            Step::Bundle => Effect::Bundle,
            Step::Start { .. } | Step::Send { .. } => {
                self.attempted.clone().map_or(Effect::Nothing, Effect::Sent)
            }
            Step::CreateDb(_) | Step::Open(_) => Effect::Created,
            _ => Effect::Nothing,
        }
    }
}

// ---------------------------------------------------------------------------------------
// One run: the workload up to the cut, the power loss, the checks
// ---------------------------------------------------------------------------------------

/// The two crash VFS instances of a sweep (one per installation), registered once.
pub struct Devices {
    pub vfs: [CrashVfs; 2],
}

impl Devices {
    pub fn register(label: &str) -> Self {
        let name = |party: usize| format!("crash-{label}-{}", NAMES[party]);
        Self {
            vfs: [
                CrashVfs::register(&name(SARO)).unwrap(),
                CrashVfs::register(&name(RAYA)).unwrap(),
            ],
        }
    }

    pub fn names(&self) -> [String; 2] {
        [self.vfs[0].name().to_owned(), self.vfs[1].name().to_owned()]
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cut point lies beyond the workload: it completed without a power loss.
    Completed { events: u64 },
    /// The power failed and every check passed.
    Survived(Survival),
}

/// What a power loss did, for the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survival {
    pub crashed: usize,
    /// The step in flight.
    pub in_flight: Option<Step>,
    /// Operations that had returned Ok and changed something, taken back (Normal only).
    pub lost_ops: usize,
    /// Their kinds (`Receive`, `Ack`, ...).
    pub lost_kinds: Vec<&'static str>,
    /// Lost receives the transport delivered again after the restart (it still held them).
    pub redelivered: usize,
    /// The operation in flight is in the database after the power loss.
    pub in_flight_applied: bool,
}

/// The deliberately broken variants a sweep can run over (`tests/broken.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// A broken VFS.
    pub vfs: Flaw,
    /// A broken library: nothing synced in Normal
    /// (`DatabaseConfig::with_unsynced_outgoing`, libchat before synced transactions).
    pub unsynced_outgoing: bool,
}

impl Faults {
    /// The correct VFS and library.
    pub const NONE: Faults = Faults {
        vfs: Flaw::None,
        unsynced_outgoing: false,
    };

    /// A broken VFS.
    pub fn vfs(flaw: Flaw) -> Self {
        Self {
            vfs: flaw,
            ..Self::NONE
        }
    }

    /// The library's outgoing operations and `sync` not synced.
    pub const UNSYNCED_OUTGOING: Faults = Faults {
        vfs: Flaw::None,
        unsynced_outgoing: true,
    };
}

/// Seed of the crash decisions of one cut point of a sweep.
pub fn cut_seed(seed: u64, cut: u64) -> u64 {
    // splitmix64 of the pair: distinct, well-mixed seeds per cut.
    let mut z = seed ^ cut.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs the workload with the power cut at call `cut`, then checks everything. `Err`
/// describes the first violated guarantee.
pub fn run_cut(
    devices: &Devices,
    combo: Combo,
    seed: u64,
    cut: u64,
    faults: Faults,
) -> Result<Outcome, String> {
    let dir = run_dir();
    let plan = CutPlan::new(Some(cut));
    let crash_seed = cut_seed(seed, cut);
    for vfs in &devices.vfs {
        vfs.arm(&plan, crash_seed, faults.vfs);
    }
    let mut app = App::new(combo, dir.path(), Some(devices.names()));
    app.unsynced_outgoing = faults.unsynced_outgoing;
    app.plan = Some(Arc::clone(&plan));
    let script = script();
    let mut in_flight = None;
    for (index, step) in script.iter().copied().enumerate() {
        let result = app.run_step(step);
        if plan.fired() {
            in_flight = Some((index, step));
            let effect = app.planned_effect(step);
            app.done.push(Done {
                index,
                step,
                effect,
                ok: false,
            });
            break;
        }
        let effect = result
            .map_err(|e| format!("step {index} {step:?} failed without a power loss: {e}"))?;
        app.done.push(Done {
            index,
            step,
            effect,
            ok: true,
        });
        if let Some(d) = step.device() {
            let snapshot = app.snapshot(d)?;
            app.snapshots[d].push((Some(index), snapshot));
        }
    }
    app.close();
    let crashes: Vec<Option<Crash>> = devices.vfs.iter().map(CrashVfs::disarm).collect();
    let Some((crashed, crash)) = crashes
        .into_iter()
        .enumerate()
        .find_map(|(d, c)| c.map(|c| (d, c)))
    else {
        return Ok(Outcome::Completed {
            events: plan.events(),
        });
    };
    for vfs in &devices.vfs {
        if vfs.open_files() != 0 {
            return Err(format!(
                "{} files still open through {}",
                vfs.open_files(),
                vfs.name()
            ));
        }
    }
    app.vfs = None;
    app.plan = None;
    let context = |e: String| format!("{} crashed ({}): {e}", NAMES[crashed], crash.summary());
    crash.check_live_files().map_err(context)?;

    // What the database would hold had every write before the cut reached the disk.
    let all_written_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    crash
        .write_all_written_into(all_written_dir.path())
        .map_err(|e| e.to_string())?;
    let all_written = check_and_dump(combo.config(all_written_dir.path(), crashed))
        .map_err(|e| context(format!("with every write applied: {e}")))?;

    crash.restore().map_err(|e| e.to_string())?;
    let recovered = check_and_dump(app.config(crashed)).map_err(context)?;
    let other = 1 - crashed;
    let other_dump = check_and_dump(app.config(other)).map_err(context)?;
    let other_last = &app.snapshots[other].last().unwrap().1;
    if &other_dump != other_last {
        return Err(context(format!(
            "{} did not lose power but its database changed",
            NAMES[other]
        )));
    }

    // Which state is the recovered one?
    let snapshots = &app.snapshots[crashed];
    let last_ok = &snapshots.last().unwrap().1;
    let in_flight_step = in_flight.map(|(_, s)| s);
    let in_flight_is_crashed_device = in_flight_step.and_then(Step::device) == Some(crashed);
    if &all_written != last_ok && !in_flight_is_crashed_device {
        return Err(context(
            "with every write applied the database is neither the last state nor one more operation".into(),
        ));
    }
    let in_flight_applied = recovered == all_written && &all_written != last_ok;
    let lost_after: Option<usize> = if in_flight_applied || &recovered == last_ok {
        None
    } else {
        match combo.durability {
            Durability::Full => {
                return Err(context(format!(
                    "Full durability: the database is not the state after the last operation that returned Ok ({}), nor that plus the one in flight ({:?}); {}",
                    describe_last_ok(snapshots),
                    in_flight_step,
                    diff_hint(last_ok, &recovered)
                )));
            }
            Durability::Normal => {
                let Some((index, _)) = snapshots.iter().rev().find(|(_, s)| s == &recovered) else {
                    return Err(context(format!(
                        "Normal durability: the database is not the state after any prefix of its operations; {}",
                        diff_hint(last_ok, &recovered)
                    )));
                };
                Some(index.map_or(0, |i| i + 1))
            }
        }
    };

    // The operations taken back: every Ok one of the crashed device after the recovered
    // state, and the one in flight unless it was applied.
    let lost: Vec<Done> = app
        .done
        .iter()
        .filter(|d| d.step.device() == Some(crashed))
        .filter(|d| match lost_after {
            Some(first_lost) => d.index >= first_lost,
            None => !d.ok && !in_flight_applied,
        })
        .cloned()
        .collect();
    let lost_ok: Vec<&Done> = lost.iter().filter(|d| d.ok).collect();
    if std::env::var("CRASH_VFS_VERBOSE").is_ok() && !lost_ok.is_empty() {
        eprintln!(
            "cut {}: {} lost {:?}",
            crash.event,
            NAMES[crashed],
            lost_ok.iter().map(|d| d.step).collect::<Vec<_>>()
        );
    }

    // Normal may lose only what stayed in this installation since its last sync: never the
    // identity, a bundle, a handshake or a message whose call returned Ok (others have seen
    // them), nor anything before a `sync` that returned Ok. (Full lost nothing: checked
    // above.) The restart below runs anyway, so that a broken variant shows what the loss
    // does to the conversation too.
    let durability_violation = lost_ok
        .iter()
        .find(|d| d.step.is_durable_point())
        .map(|d| {
            context(format!(
                "Normal durability lost step {} {:?}, which had returned Ok (an operation whose result left the process, or a sync); lost: {:?}",
                d.index,
                d.step,
                lost_ok.iter().map(|d| d.step).collect::<Vec<_>>()
            ))
        });
    let lost_receives: Vec<&Done> = lost_ok
        .iter()
        .copied()
        .filter(|d| matches!(d.step, Step::Receive { .. }))
        .collect();

    let restart = restart_and_check(&mut app, crashed, in_flight_step).map_err(|e| {
        context(format!(
            "after the restart (lost operations: {:?}; in flight {:?}, applied: {in_flight_applied}): {e}",
            lost.iter().map(|d| d.step).collect::<Vec<_>>(),
            in_flight_step
        ))
    });
    match (durability_violation, restart) {
        (None, Ok(())) => {}
        (Some(violation), Ok(())) => return Err(violation),
        (None, Err(e)) => return Err(e),
        (Some(violation), Err(e)) => return Err(format!("{violation}\n  and {e}")),
    }
    // For the figures, the lost operations that had changed something (not a duplicate, a
    // checkpoint or a reopen).
    let lost_writes: Vec<&'static str> = lost_ok
        .iter()
        .filter(|d| {
            !matches!(
                d.step,
                Step::Duplicate(_) | Step::Checkpoint(_) | Step::Reopen(_)
            )
        })
        .map(|d| d.step.kind())
        .collect();
    Ok(Outcome::Survived(Survival {
        crashed,
        in_flight: in_flight_step,
        lost_ops: lost_writes.len(),
        lost_kinds: lost_writes,
        redelivered: lost_receives.len(),
        in_flight_applied,
    }))
}

fn describe_last_ok(snapshots: &[(Option<usize>, Vec<String>)]) -> String {
    match snapshots.last() {
        Some((Some(i), _)) => format!("step {i}"),
        _ => "none".into(),
    }
}

/// The first lines that differ between two dumps (secrets are test data).
fn diff_hint(expected: &[String], actual: &[String]) -> String {
    let e: BTreeSet<&String> = expected.iter().collect();
    let a: BTreeSet<&String> = actual.iter().collect();
    let missing: Vec<&&String> = e.difference(&a).take(3).collect();
    let extra: Vec<&&String> = a.difference(&e).take(3).collect();
    let cut = |s: &&&String| s.chars().take(120).collect::<String>();
    format!(
        "missing {:?}, unexpected {:?}",
        missing.iter().map(cut).collect::<Vec<_>>(),
        extra.iter().map(cut).collect::<Vec<_>>()
    )
}

// ---------------------------------------------------------------------------------------
// After the power loss: restart, redeliver, carry on
// ---------------------------------------------------------------------------------------

/// Sends `text` from `from` in its newest conversation, hands it to the transport, and has
/// the peer receive it: it must decrypt to `text`. `Ok(false)` when `from` has no
/// conversation.
fn exchange(app: &mut App, from: usize, text: &[u8]) -> Result<bool, String> {
    let to = 1 - from;
    let Some(convo) = app
        .client(from)?
        .conversations()
        .map_err(|e| e.to_string())?
        .pop()
    else {
        return Ok(false);
    };
    let sent = app
        .client(from)?
        .send(&convo.conversation_id, text)
        .map_err(|e| format!("{} cannot send after the restart: {e}", NAMES[from]))?;
    app.publish(from, sent.envelope.bytes.clone(), text.to_vec());
    app.client(from)?
        .mark_delivered(sent.outbox_id)
        .map_err(|e| e.to_string())?;
    let what = format!(
        "{}'s message after the restart at {}",
        NAMES[from], NAMES[to]
    );
    match app.client(to)?.receive(&sent.envelope.bytes) {
        Ok(Received::Content {
            inbox_id, content, ..
        }) => {
            if content != text {
                return Err(format!("{what}: decrypted the wrong content"));
            }
            app.shown[to].push(content);
            app.client(to)?
                .acknowledge(inbox_id)
                .map_err(|e| e.to_string())?;
            Ok(true)
        }
        Ok(other) => Err(format!("{what}: {other:?}")),
        Err(e) => Err(format!("{what}: {e} ({e:?})")),
    }
}

/// Every conversation's history of `client`: (sent, received) contents.
fn histories(client: &mut Client) -> Result<Histories, String> {
    let mut sent = Vec::new();
    let mut received = Vec::new();
    for convo in client.conversations().map_err(|e| e.to_string())? {
        for entry in client
            .history(&convo.conversation_id, 100_000)
            .map_err(|e| e.to_string())?
        {
            match entry.direction {
                Direction::Sent => sent.push(entry.content),
                Direction::Received => received.push(entry.content),
            }
        }
    }
    Ok((sent, received))
}

/// Restarts both installations on the default VFS the way an application does after a crash
/// (redeliver the outbox, show the inbox, fetch what the transport still holds: with Normal,
/// every envelope received since the recipient's last `sync`), then carries the conversation
/// on. Whatever the durability, nothing may be refused or missing:
/// - every envelope the transport redelivers is received (or a duplicate), none refused;
/// - new messages decrypt both ways;
/// - every send that returned Ok is in its sender's history and, exactly once, in the peer's;
///   a send in flight that committed is re-sent from the outbox;
/// - the application saw every received message; outboxes and inboxes end empty;
/// - a new conversation works, and both files pass the checks again.
fn restart_and_check(app: &mut App, crashed: usize, in_flight: Option<Step>) -> Result<(), String> {
    for party in [SARO, RAYA] {
        let client = Client::open(ClientConfig::new(app.config(party), NAMES[party]))
            .map_err(|e| format!("{} does not reopen: {e}", NAMES[party]))?;
        app.clients[party] = Some(client);
    }
    for _pass in 0..2 {
        for party in [SARO, RAYA] {
            // Redeliver the outbox.
            let pending = app
                .client(party)?
                .outbox(1_000)
                .map_err(|e| e.to_string())?;
            for entry in pending {
                app.republish(party, &entry.envelope);
                app.client(party)?
                    .mark_delivered(entry.id)
                    .map_err(|e| e.to_string())?;
            }
            // Show what is in the inbox.
            for entry in app.client(party)?.inbox(1_000).map_err(|e| e.to_string())? {
                app.shown[party].push(entry.content);
                app.client(party)?
                    .acknowledge(entry.id)
                    .map_err(|e| e.to_string())?;
            }
            // Fetch everything the transport holds (already processed ones are duplicates).
            for envelope in app.held_for(party) {
                match app.client(party)?.receive(&envelope) {
                    Ok(Received::Content {
                        inbox_id, content, ..
                    }) => {
                        app.shown[party].push(content);
                        app.client(party)?
                            .acknowledge(inbox_id)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(Received::Duplicate) => {}
                    Ok(other) => {
                        return Err(format!(
                            "{} got {other:?} for an envelope from the transport",
                            NAMES[party]
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "{} receiving an envelope from the transport: {e} ({e:?})",
                            NAMES[party]
                        ));
                    }
                }
            }
        }
    }

    // Carry the conversation on (starting it if the power failed before it existed).
    let saro_convo = app
        .client(SARO)?
        .conversations()
        .map_err(|e| e.to_string())?;
    if saro_convo.is_empty() {
        let bundle = match &app.bundle {
            Some(b) => b.clone(),
            None => app
                .client(RAYA)?
                .create_intro_bundle()
                .map_err(|e| e.to_string())?,
        };
        let text = b"hello after the restart".to_vec();
        let sent = app
            .client(SARO)?
            .start_conversation(&bundle, &text)
            .map_err(|e| e.to_string())?;
        app.publish(SARO, sent.envelope.bytes.clone(), text.clone());
        app.client(SARO)?
            .mark_delivered(sent.outbox_id)
            .map_err(|e| e.to_string())?;
        match app.client(RAYA)?.receive(&sent.envelope.bytes) {
            Ok(Received::Content {
                inbox_id, content, ..
            }) => {
                app.shown[RAYA].push(content);
                app.client(RAYA)?
                    .acknowledge(inbox_id)
                    .map_err(|e| e.to_string())?;
            }
            Ok(other) => return Err(format!("the new handshake gave {other:?}")),
            Err(e) => return Err(format!("Raya receiving the new handshake: {e} ({e:?})")),
        }
    }
    // The peer's next messages decrypt, and ours at the peer.
    for round in 0..2 {
        for from in [crashed, 1 - crashed] {
            let text = format!("{} after the restart {round}", NAMES[from]).into_bytes();
            if !exchange(app, from, &text)? {
                return Err(format!(
                    "{} has no conversation after the restart",
                    NAMES[from]
                ));
            }
        }
    }

    // Everything shown was really sent by the peer.
    for party in [SARO, RAYA] {
        let (_, received) = histories(app.client(party)?)?;
        let peer_sent: BTreeSet<Vec<u8>> = app.sent_ok[1 - party]
            .iter()
            .cloned()
            .chain(app.published[1 - party].iter().cloned())
            .chain(in_flight_content(app, in_flight, 1 - party))
            .collect();
        for content in received.iter().chain(app.shown[party].iter()) {
            if !peer_sent.contains(content) {
                return Err(format!(
                    "{} holds content {:?}… that {} never sent",
                    NAMES[party],
                    String::from_utf8_lossy(&content[..content.len().min(30)]),
                    NAMES[1 - party]
                ));
            }
        }
    }

    // No message twice in a history, every send that returned Ok still there, the
    // application saw everything received, and every message exactly once across the two
    // histories.
    for from in [SARO, RAYA] {
        let to = 1 - from;
        let (sent, _) = histories(app.client(from)?)?;
        let (_, received) = histories(app.client(to)?)?;
        for list in [&sent, &received] {
            let distinct: BTreeSet<&Vec<u8>> = list.iter().collect();
            if distinct.len() != list.len() {
                return Err(format!(
                    "a message appears twice in a history of {} -> {}",
                    NAMES[from], NAMES[to]
                ));
            }
        }
        let sent_set: BTreeSet<&Vec<u8>> = sent.iter().collect();
        for text in &app.sent_ok[from] {
            if !sent_set.contains(text) {
                return Err(format!(
                    "{}'s send {:?}… returned Ok but is gone",
                    NAMES[from],
                    String::from_utf8_lossy(&text[..text.len().min(30)])
                ));
            }
        }
        for text in &received {
            if !app.shown[to].contains(text) {
                return Err(format!("{} never showed a received message", NAMES[to]));
            }
        }
        let mut sent_sorted = sent.clone();
        sent_sorted.sort();
        let mut received_sorted = received.clone();
        received_sorted.sort();
        if sent_sorted != received_sorted {
            return Err(format!(
                "{} sent {} messages, {} received {} (exactly once expected)",
                NAMES[from],
                sent.len(),
                NAMES[to],
                received.len()
            ));
        }
    }
    for party in [SARO, RAYA] {
        let client = app.client(party)?;
        if !client.outbox(10).map_err(|e| e.to_string())?.is_empty()
            || !client.inbox(10).map_err(|e| e.to_string())?.is_empty()
        {
            return Err(format!("{}'s outbox or inbox is not empty", NAMES[party]));
        }
    }
    {
        // A new conversation works too.
        let bundle = app
            .client(RAYA)?
            .create_intro_bundle()
            .map_err(|e| e.to_string())?;
        let sent = app
            .client(SARO)?
            .start_conversation(&bundle, b"starting over")
            .map_err(|e| format!("a new conversation cannot start: {e}"))?;
        let Received::Content {
            conversation_id, ..
        } = app
            .client(RAYA)?
            .receive(&sent.envelope.bytes)
            .map_err(|e| format!("the new handshake is refused: {e}"))?
        else {
            return Err("the new handshake carried no content".into());
        };
        let reply = app
            .client(RAYA)?
            .send(&conversation_id, b"agreed")
            .map_err(|e| e.to_string())?;
        match app.client(SARO)?.receive(&reply.envelope.bytes) {
            Ok(Received::Content { content, .. }) if content == b"agreed" => {}
            other => return Err(format!("the reply in the new conversation gave {other:?}")),
        }
    }
    app.close();
    for party in [SARO, RAYA] {
        check_and_dump(app.config(party)).map_err(|e| format!("after carrying on: {e}"))?;
    }
    Ok(())
}

fn in_flight_content(app: &App, in_flight: Option<Step>, party: usize) -> Option<Vec<u8>> {
    match in_flight {
        Some(step @ (Step::Start { .. } | Step::Send { .. })) if step.device() == Some(party) => {
            match app.planned_effect(step) {
                Effect::Sent(text) => Some(text),
                _ => None,
            }
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Sweeps
// ---------------------------------------------------------------------------------------

/// Figures of a sweep.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub cuts: usize,
    pub workload_events: u64,
    pub crashed: [usize; 2],
    pub in_flight_applied: usize,
    /// Cuts that took back operations that had returned Ok (Normal only), and how many.
    pub lost_some: usize,
    pub lost_ops: usize,
    /// The operations taken back, by kind.
    pub lost_kinds: BTreeMap<&'static str, usize>,
    /// Lost receives redone from the transport after the restart.
    pub redelivered: usize,
    pub failures: Vec<String>,
    pub elapsed: Duration,
}

/// Cuts the power at `first`, `first + stride`, ... until the workload completes before the
/// cut (or `max_cuts` cuts were made), checking each. Failures are collected (not panicked)
/// so that a broken variant can be shown to be detected.
pub fn sweep(
    devices: &Devices,
    combo: Combo,
    seed: u64,
    first: u64,
    stride: u64,
    max_cuts: usize,
    faults: Faults,
) -> Figures {
    let started = Instant::now();
    let mut figures = Figures::default();
    if let Some((replay_combo, replay_seed, replay_cut)) = replay_request() {
        if replay_combo == combo {
            eprintln!(
                "replaying {} seed {replay_seed} cut {replay_cut}",
                combo.label()
            );
            if let Err(e) = run_cut(devices, combo, replay_seed, replay_cut, faults) {
                figures.failures.push(e);
            }
            figures.cuts = 1;
        }
        return figures;
    }
    let mut cut = first;
    while figures.cuts < max_cuts {
        match run_cut(devices, combo, seed, cut, faults) {
            Ok(Outcome::Completed { events }) => {
                figures.workload_events = events;
                break;
            }
            Ok(Outcome::Survived(s)) => {
                figures.cuts += 1;
                figures.crashed[s.crashed] += 1;
                figures.in_flight_applied += usize::from(s.in_flight_applied);
                figures.lost_some += usize::from(s.lost_ops > 0);
                figures.lost_ops += s.lost_ops;
                figures.redelivered += s.redelivered;
                for kind in s.lost_kinds {
                    *figures.lost_kinds.entry(kind).or_default() += 1;
                }
            }
            Err(e) => {
                figures.cuts += 1;
                figures.failures.push(format!(
                    "{e}\n  replay: CRASH_VFS_REPLAY={}:{seed}:{cut}",
                    combo.label()
                ));
            }
        }
        cut += stride;
    }
    figures.elapsed = started.elapsed();
    figures
}

/// `CRASH_VFS_REPLAY=<combo>:<seed>:<cut>`, if set.
pub fn replay_request() -> Option<(Combo, u64, u64)> {
    let text = std::env::var("CRASH_VFS_REPLAY").ok()?;
    let mut parts = text.split(':');
    let combo = Combo::parse(parts.next()?)?;
    let seed = parts.next()?.parse().ok()?;
    let cut = parts.next()?.parse().ok()?;
    Some((combo, seed, cut))
}

pub fn report(label: &str, figures: &Figures) {
    if std::env::var("CRASH_VFS_VERBOSE").is_ok() {
        for failure in &figures.failures {
            eprintln!("{label}: FAILURE {failure}");
        }
    }
    eprintln!(
        "{label}: {} cut points (workload of {} file-changing calls), crashed saro {} / raya {}, in-flight op applied {}, runs losing Ok ops {} ({} ops: {:?}; lost receives redone from the transport {}), failures {}, {:.1} s",
        figures.cuts,
        figures.workload_events,
        figures.crashed[SARO],
        figures.crashed[RAYA],
        figures.in_flight_applied,
        figures.lost_some,
        figures.lost_ops,
        figures.lost_kinds,
        figures.redelivered,
        figures.failures.len(),
        figures.elapsed.as_secs_f64()
    );
}
