//! The PostgreSQL store: the same [`StoreData`] as the file store, kept in
//! tables so that several `kmsfs kms serve` replicas can share it. Layout
//! and migrations in docs/FORMAT.md ("PostgreSQL store").
//!
//! - One row per key (its versions, policy, tags and grants) and one per
//!   alias, each sealed under the root key with the row's identity as
//!   associated data, so a row cannot be moved to another key or alias;
//!   the rest (region, account, IAM, usage) is one sealed row of
//!   `kmsfs_meta`. Nothing readable by the database's users is secret.
//! - Every row carries the generation that last wrote it. A change locks
//!   the one `kmsfs_meta` row (`SELECT … FOR UPDATE`), so writers from all
//!   replicas are serialised and each applies its change to the latest
//!   state; it writes only the rows whose contents changed, under the next
//!   generation, in one transaction. Two replicas rotating or disabling the
//!   same key at once thus end in one of the two orders, never a mix.
//! - Readers ask for the current generation (one indexed row) and fetch
//!   only the rows written since the generation they hold: no replica ever
//!   reloads the whole store after the first.
//! - The first replica to reach an empty database creates the tables and
//!   the store under an advisory lock; later schema versions are numbered
//!   migrations recorded in `kmsfs_schema_migrations`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{
    KIND_KEY_FILE, KIND_PASSPHRASE, RootSecret, StoreHeader, create_root_key_file, derive_root,
    read_root_key_file,
};
use crate::error::{KmsError, Result};
use crate::material::{KeyMaterial, NONCE_LEN, random_nonce};
use crate::model::{Alias, Key, StoreData};

/// Serialises the initialisation of an empty database by several replicas
/// (`pg_advisory_xact_lock`); any constant unlikely to clash will do.
const INIT_LOCK: i64 = 0x6b6d_7366_7300_0001;

/// The schema, one entry per version; a database at version N gets
/// N+1.. applied in order, each in the initialising transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the first layout.
    "CREATE TABLE kmsfs_meta (
         id integer PRIMARY KEY CHECK (id = 1),
         generation bigint NOT NULL,
         root_kind smallint NOT NULL,
         root_params bytea NOT NULL,
         root_check bytea NOT NULL,
         rest_generation bigint NOT NULL,
         rest bytea NOT NULL
     );
     CREATE TABLE kmsfs_keys (
         key_id text PRIMARY KEY,
         region text NOT NULL,
         generation bigint NOT NULL,
         deleted boolean NOT NULL,
         sealed bytea
     );
     CREATE INDEX kmsfs_keys_generation ON kmsfs_keys (generation);
     CREATE TABLE kmsfs_aliases (
         region text NOT NULL,
         name text NOT NULL,
         generation bigint NOT NULL,
         deleted boolean NOT NULL,
         sealed bytea,
         PRIMARY KEY (region, name)
     );
     CREATE INDEX kmsfs_aliases_generation ON kmsfs_aliases (generation);",
];

/// The associated data of the root key check and of each sealed row.
const AAD_CHECK: &[u8] = b"kmsfs-pg-root-check";
const AAD_REST: &[u8] = b"kmsfs-pg-rest";

fn key_aad(id: &str) -> Vec<u8> {
    [b"kmsfs-pg-key\0".as_slice(), id.as_bytes()].concat()
}

fn alias_aad(region: &str, name: &str) -> Vec<u8> {
    [
        b"kmsfs-pg-alias\0".as_slice(),
        region.as_bytes(),
        b"\0",
        name.as_bytes(),
    ]
    .concat()
}

/// Whether a `--store` value names a PostgreSQL database rather than a file.
pub fn is_postgres_url(location: &Path) -> bool {
    location
        .to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// Where a PostgreSQL store's root key file is: the same file, copied, on
/// every replica's host.
pub fn root_key_file() -> Option<PathBuf> {
    std::env::var_os("KMSFS_ROOT_KEY_FILE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn db_err(what: &str, e: impl std::fmt::Display) -> KmsError {
    KmsError::store(format!("PostgreSQL store: {what}: {e}"))
}

/// A job gets the client and the number of the connection it runs on (a
/// reconnection in the middle of a transaction must fail the transaction,
/// not let its remaining statements autocommit on the new connection).
type Job = Box<dyn FnOnce(std::result::Result<(&mut postgres::Client, u64), String>) + Send>;

/// The connection lives on a thread of its own: the `postgres` client
/// drives a runtime of its own, which cannot run inside the server's
/// (requests reach the store from tokio's blocking threads). A lost
/// connection is re-made before the next job.
struct Connection {
    jobs: mpsc::Sender<Job>,
}

impl Connection {
    fn start(config: postgres::Config) -> Connection {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kmsfs-postgres".into())
            .spawn(move || {
                let mut client: Option<postgres::Client> = None;
                let mut epoch = 0u64;
                for job in queue {
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        client = None;
                        match config.connect(postgres::NoTls) {
                            Ok(c) => {
                                client = Some(c);
                                epoch += 1;
                            }
                            Err(e) => {
                                job(Err(e.to_string()));
                                continue;
                            }
                        }
                    }
                    match client.as_mut() {
                        Some(c) => job(Ok((c, epoch))),
                        None => job(Err("not connected".into())),
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the PostgreSQL thread"));
        Connection { jobs }
    }

    /// Runs `f` on the connection and waits for its result.
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, postgres::Error>
        + Send
        + 'static,
    ) -> Result<T> {
        self.run_on(None, f).map(|(out, _)| out)
    }

    /// As [`Connection::run`], on connection number `epoch` only (when
    /// given), and says which connection ran it.
    fn run_on<T: Send + 'static>(
        &self,
        epoch: Option<u64>,
        f: impl FnOnce(&mut postgres::Client) -> std::result::Result<T, postgres::Error>
        + Send
        + 'static,
    ) -> Result<(T, u64)> {
        let (done, result) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            let out = match client {
                Ok((_, now)) if epoch.is_some_and(|e| e != now) => Err(db_err(
                    "the connection was lost during a transaction",
                    "the change was not made",
                )),
                Ok((c, now)) => f(c)
                    .map(|out| (out, now))
                    .map_err(|e| db_err("query failed", describe(&e))),
                Err(e) => Err(db_err("cannot connect", e)),
            };
            let _ = done.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| db_err("connection thread", "stopped"))?;
        result
            .recv()
            .map_err(|_| db_err("connection thread", "stopped"))?
    }
}

/// The server's own message where there is one (`postgres::Error`'s
/// Display says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// One row as read: its identity, whether it was deleted, its sealed bytes.
enum Row {
    Key(String, Option<Vec<u8>>),
    Alias(String, String, Option<Vec<u8>>),
    Rest(Vec<u8>),
}

/// One row to write.
enum Write {
    Key {
        id: String,
        region: String,
        sealed: Option<Vec<u8>>,
    },
    Alias {
        region: String,
        name: String,
        sealed: Option<Vec<u8>>,
    },
    Rest(Vec<u8>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum RowId {
    Key(String),
    Alias(String, String),
    Rest,
}

pub(super) struct PgStore {
    /// The URL without its password, for messages.
    shown: String,
    conn: Connection,
    root: KeyMaterial,
    /// The generation `data` reflects.
    generation: i64,
    /// A digest of each row's plaintext as last read or written, to find
    /// the rows a change touched without comparing whole keys.
    digests: HashMap<RowId, [u8; 32]>,
    /// The connection of the open transaction (between `begin` and
    /// `commit`/`rollback`), if one is open.
    transaction: Option<u64>,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl PgStore {
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// Connects, creating the schema and the store if the database is empty
    /// (`create`), and loads everything once.
    pub(super) fn open(
        url: &str,
        secret: &RootSecret,
        create: Option<(&str, &str)>,
    ) -> Result<(PgStore, StoreData)> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| db_err("the URL does not parse", e))?;
        let shown = format!(
            "postgres://{}@{}/{}",
            config.get_user().unwrap_or(""),
            config
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(h) => h.clone(),
                    postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_default(),
            config.get_dbname().unwrap_or("")
        );
        let conn = Connection::start(config);
        let mut meta = conn.run(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK])?;
            migrate(&mut tx)?;
            let row = tx.query_opt(
                "SELECT root_kind, root_params, root_check FROM kmsfs_meta WHERE id = 1",
                &[],
            )?;
            tx.commit()?;
            Ok(row.map(|r| {
                (
                    r.get::<_, i16>(0),
                    r.get::<_, Vec<u8>>(1),
                    r.get::<_, Vec<u8>>(2),
                )
            }))
        })?;
        if meta.is_none() {
            let Some((region, account)) = create else {
                return Err(KmsError::store(format!(
                    "The PostgreSQL store {shown} holds no key store yet"
                )));
            };
            meta = Some(initialise(&conn, secret, region, account, &shown)?);
        }
        let (kind, params, check) = meta.ok_or_else(|| db_err("meta", "missing"))?;
        let root = root_of(kind, &params, secret, &shown)?;
        let check_nonce: [u8; NONCE_LEN] = check
            .get(..NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| db_err("root check", "too short"))?;
        if root
            .open(&check_nonce, AAD_CHECK, &check[NONCE_LEN..])
            .is_none()
        {
            return Err(KmsError::store(format!(
                "The PostgreSQL store {shown} is sealed under another root key (check KMSFS_ROOT_KEY_FILE or the passphrase)"
            )));
        }
        let mut store = PgStore {
            shown,
            conn,
            root,
            generation: -1,
            digests: HashMap::new(),
            transaction: None,
        };
        let mut data = StoreData::new("", "");
        store.catch_up(&mut data, false)?;
        data.upgrade()?;
        Ok((store, data))
    }

    fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = random_nonce();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&self.root.seal(&nonce, aad, plain));
        out
    }

    fn unseal(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>> {
        let nonce: Option<[u8; NONCE_LEN]> =
            sealed.get(..NONCE_LEN).and_then(|n| n.try_into().ok());
        nonce
            .and_then(|n| self.root.open(&n, aad, &sealed[NONCE_LEN..]))
            .ok_or_else(|| {
                KmsError::store(format!(
                    "The PostgreSQL store {}: {what} cannot be authenticated (damaged or moved); nothing was changed",
                    self.shown
                ))
            })
    }

    /// Brings `data` up to the database's generation, reading only the rows
    /// written since ours. `locked`: inside the writer's transaction, whose
    /// `FOR UPDATE` keeps the generation still until the commit.
    fn catch_up(&mut self, data: &mut StoreData, locked: bool) -> Result<()> {
        let since = self.generation;
        let epoch = if locked { self.transaction } else { None };
        let ((generation, rows), _) = self.conn.run_on(epoch, move |c| {
            let lock = if locked { " FOR UPDATE" } else { "" };
            let g: i64 = c
                .query_one(
                    &format!("SELECT generation FROM kmsfs_meta WHERE id = 1{lock}"),
                    &[],
                )?
                .get(0);
            let mut rows = Vec::new();
            if g == since {
                return Ok((g, rows));
            }
            // A first load skips the tombstones of deleted rows.
            let live = if since < 0 { " AND NOT deleted" } else { "" };
            for r in c.query(
                &format!("SELECT key_id, sealed FROM kmsfs_keys WHERE generation > $1{live}"),
                &[&since],
            )? {
                rows.push(Row::Key(r.get(0), r.get(1)));
            }
            for r in c.query(
                &format!(
                    "SELECT region, name, sealed FROM kmsfs_aliases WHERE generation > $1{live}"
                ),
                &[&since],
            )? {
                rows.push(Row::Alias(r.get(0), r.get(1), r.get(2)));
            }
            if let Some(r) = c.query_opt(
                "SELECT rest FROM kmsfs_meta WHERE id = 1 AND rest_generation > $1",
                &[&since],
            )? {
                rows.push(Row::Rest(r.get(0)));
            }
            Ok((g, rows))
        })?;
        for row in rows {
            self.apply(data, row)?;
        }
        self.generation = generation;
        Ok(())
    }

    fn apply(&mut self, data: &mut StoreData, row: Row) -> Result<()> {
        match row {
            Row::Key(id, sealed) => {
                let uuid = uuid::Uuid::parse_str(&id).map_err(|e| db_err("key id", e))?;
                match sealed {
                    None => {
                        data.keys.remove(&uuid);
                        self.digests.remove(&RowId::Key(id));
                    }
                    Some(s) => {
                        let plain = self.unseal(&key_aad(&id), &s, &format!("key {id}"))?;
                        let key: Key = serde_json::from_slice(&plain)
                            .map_err(|e| db_err(&format!("key {id} does not parse"), e))?;
                        self.digests.insert(RowId::Key(id), digest(&plain));
                        data.keys.insert(uuid, key);
                    }
                }
            }
            Row::Alias(region, name, sealed) => match sealed {
                None => {
                    if let Some(m) = data.aliases_by_region.get_mut(&region) {
                        m.remove(&name);
                    }
                    self.digests.remove(&RowId::Alias(region, name));
                }
                Some(s) => {
                    let plain =
                        self.unseal(&alias_aad(&region, &name), &s, &format!("alias {name}"))?;
                    let alias: Alias = serde_json::from_slice(&plain)
                        .map_err(|e| db_err(&format!("alias {name} does not parse"), e))?;
                    self.digests
                        .insert(RowId::Alias(region.clone(), name.clone()), digest(&plain));
                    data.aliases_by_region
                        .entry(region)
                        .or_default()
                        .insert(name, alias);
                }
            },
            Row::Rest(s) => {
                let plain = self.unseal(AAD_REST, &s, "the store's settings")?;
                let rest: StoreData = serde_json::from_slice(&plain)
                    .map_err(|e| db_err("the store's settings do not parse", e))?;
                self.digests.insert(RowId::Rest, digest(&plain));
                data.layout = rest.layout;
                data.region = rest.region;
                data.account = rest.account;
                data.iam = rest.iam;
                data.usage = rest.usage;
            }
        }
        Ok(())
    }

    /// Re-reads what other replicas changed since we last looked.
    pub(super) fn refresh(&mut self, data: &mut StoreData) -> Result<()> {
        self.catch_up(data, false)
    }

    /// Opens the writer's transaction: locks the store's generation and
    /// catches `data` up to it.
    pub(super) fn begin(&mut self, data: &mut StoreData) -> Result<()> {
        let ((), epoch) = self.conn.run_on(None, |c| c.batch_execute("BEGIN"))?;
        self.transaction = Some(epoch);
        if let Err(e) = self.catch_up(data, true) {
            self.rollback();
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn rollback(&mut self) {
        if let Some(epoch) = self.transaction.take()
            && let Err(e) = self
                .conn
                .run_on(Some(epoch), |c| c.batch_execute("ROLLBACK"))
        {
            tracing::debug!(error = %e, "PostgreSQL rollback");
        }
    }

    /// Writes the rows of `next` that differ from what the database holds,
    /// under the next generation, and commits. On error nothing is changed
    /// (the transaction is rolled back).
    pub(super) fn commit(&mut self, next: &mut StoreData) -> Result<()> {
        let result = self.write_changes(next);
        if result.is_err() {
            self.rollback();
        }
        result
    }

    fn write_changes(&mut self, next: &mut StoreData) -> Result<()> {
        let mut writes = Vec::new();
        let mut digests = HashMap::new();
        for (uuid, key) in &next.keys {
            let id = uuid.to_string();
            let plain = Zeroizing::new(
                serde_json::to_vec(key).map_err(|e| KmsError::Internal(e.to_string()))?,
            );
            let d = digest(&plain);
            let row = RowId::Key(id.clone());
            if self.digests.get(&row) != Some(&d) {
                writes.push(Write::Key {
                    sealed: Some(self.seal(&key_aad(&id), &plain)),
                    id,
                    region: key.region.clone(),
                });
            }
            digests.insert(row, d);
        }
        for (region, aliases) in &next.aliases_by_region {
            for (name, alias) in aliases {
                let plain =
                    serde_json::to_vec(alias).map_err(|e| KmsError::Internal(e.to_string()))?;
                let d = digest(&plain);
                let row = RowId::Alias(region.clone(), name.clone());
                if self.digests.get(&row) != Some(&d) {
                    writes.push(Write::Alias {
                        sealed: Some(self.seal(&alias_aad(region, name), &plain)),
                        region: region.clone(),
                        name: name.clone(),
                    });
                }
                digests.insert(row, d);
            }
        }
        // The rest: the store without its keys and aliases.
        let keys = std::mem::take(&mut next.keys);
        let aliases = std::mem::take(&mut next.aliases_by_region);
        let rest = serde_json::to_vec(&*next).map(Zeroizing::new);
        next.keys = keys;
        next.aliases_by_region = aliases;
        let rest = rest.map_err(|e| KmsError::Internal(e.to_string()))?;
        let d = digest(&rest);
        if self.digests.get(&RowId::Rest) != Some(&d) {
            writes.push(Write::Rest(self.seal(AAD_REST, &rest)));
        }
        digests.insert(RowId::Rest, d);
        for gone in self.digests.keys().filter(|r| !digests.contains_key(*r)) {
            match gone {
                RowId::Key(id) => writes.push(Write::Key {
                    id: id.clone(),
                    region: String::new(),
                    sealed: None,
                }),
                RowId::Alias(region, name) => writes.push(Write::Alias {
                    region: region.clone(),
                    name: name.clone(),
                    sealed: None,
                }),
                RowId::Rest => {}
            }
        }
        let generation = self.generation + 1;
        let epoch = self
            .transaction
            .ok_or_else(|| KmsError::Internal("a store change outside a transaction".into()))?;
        self.conn.run_on(Some(epoch), move |c| {
            for w in &writes {
                match w {
                    Write::Key { id, region, sealed } => {
                        c.execute(
                            "INSERT INTO kmsfs_keys (key_id, region, generation, deleted, sealed)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (key_id) DO UPDATE SET generation = $3, deleted = $4,
                               sealed = $5, region = CASE WHEN $4 THEN kmsfs_keys.region ELSE $2 END",
                            &[id, region, &generation, &sealed.is_none(), sealed],
                        )?;
                    }
                    Write::Alias { region, name, sealed } => {
                        c.execute(
                            "INSERT INTO kmsfs_aliases (region, name, generation, deleted, sealed)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (region, name) DO UPDATE SET generation = $3,
                               deleted = $4, sealed = $5",
                            &[region, name, &generation, &sealed.is_none(), sealed],
                        )?;
                    }
                    Write::Rest(sealed) => {
                        c.execute(
                            "UPDATE kmsfs_meta SET rest = $1, rest_generation = $2 WHERE id = 1",
                            &[sealed, &generation],
                        )?;
                    }
                }
            }
            c.execute(
                "UPDATE kmsfs_meta SET generation = $1 WHERE id = 1",
                &[&generation],
            )?;
            c.batch_execute("COMMIT")
        })?;
        self.transaction = None;
        self.generation = generation;
        self.digests = digests;
        Ok(())
    }
}

fn migrate(tx: &mut postgres::Transaction) -> std::result::Result<(), postgres::Error> {
    // Asked first: CREATE TABLE IF NOT EXISTS would log a notice each time.
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass('kmsfs_schema_migrations') IS NOT NULL",
            &[],
        )?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE kmsfs_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )?;
    }
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM kmsfs_schema_migrations",
            &[],
        )?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i32 + 1;
        if version > current {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO kmsfs_schema_migrations (version) VALUES ($1)",
                &[&version],
            )?;
        }
    }
    Ok(())
}

/// The root key of a store whose meta row says `kind` and `params`.
fn root_of(kind: i16, params: &[u8], secret: &RootSecret, shown: &str) -> Result<KeyMaterial> {
    if kind == i16::from(KIND_KEY_FILE) {
        let path = root_key_file().ok_or_else(|| {
            KmsError::store(format!(
                "The PostgreSQL store {shown} is sealed by a root key file: set KMSFS_ROOT_KEY_FILE to it"
            ))
        })?;
        return read_root_key_file(&path);
    }
    let header =
        decode_params(params).ok_or_else(|| db_err("the root key parameters", "do not parse"))?;
    header.check_argon2_params(Path::new(shown))?;
    derive_root(&header, secret, Path::new(shown))
}

fn decode_params(p: &[u8]) -> Option<StoreHeader> {
    let u32_at = |o: usize| Some(u32::from_be_bytes(p.get(o..o + 4)?.try_into().ok()?));
    Some(StoreHeader {
        kind: KIND_PASSPHRASE,
        m_kib: u32_at(0)?,
        t: u32_at(4)?,
        p: u32_at(8)?,
        salt: p.get(12..28)?.try_into().ok()?,
    })
}

/// Creates the store in an empty database: a new root key (file or
/// passphrase), its check value and an empty store. Under the same advisory
/// lock as the schema, so of several replicas starting at once one creates
/// it and the others read it.
fn initialise(
    conn: &Connection,
    secret: &RootSecret,
    region: &str,
    account: &str,
    shown: &str,
) -> Result<(i16, Vec<u8>, Vec<u8>)> {
    let (kind, params, root) = match secret {
        RootSecret::Passphrase(_) => {
            let header = StoreHeader::new_passphrase();
            let root = derive_root(&header, secret, Path::new(shown))?;
            let mut params = Vec::new();
            for v in [header.m_kib, header.t, header.p] {
                params.extend_from_slice(&v.to_be_bytes());
            }
            params.extend_from_slice(&header.salt);
            (KIND_PASSPHRASE, params, root)
        }
        RootSecret::KeyFile => {
            let path = root_key_file().ok_or_else(|| {
                KmsError::store(format!(
                    "A new PostgreSQL store ({shown}) needs KMSFS_ROOT_KEY_FILE (a root key file, made if absent, then copied to every replica) or KMSFS_PASSPHRASE_FILE"
                ))
            })?;
            let root = if path.exists() {
                read_root_key_file(&path)?
            } else {
                create_root_key_file(&path)?
            };
            (KIND_KEY_FILE, Vec::new(), root)
        }
    };
    let nonce = random_nonce();
    let mut check = nonce.to_vec();
    check.extend_from_slice(&root.seal(&nonce, AAD_CHECK, b"kmsfs"));
    let empty = Zeroizing::new(
        serde_json::to_vec(&StoreData::new(region, account))
            .map_err(|e| KmsError::Internal(e.to_string()))?,
    );
    let nonce = random_nonce();
    let mut rest = nonce.to_vec();
    rest.extend_from_slice(&root.seal(&nonce, AAD_REST, &empty));
    let kind = i16::from(kind);
    conn.run(move |c| {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK])?;
        tx.execute(
            "INSERT INTO kmsfs_meta (id, generation, root_kind, root_params, root_check,
                                     rest_generation, rest)
             VALUES (1, 0, $1, $2, $3, 0, $4) ON CONFLICT (id) DO NOTHING",
            &[&kind, &params, &check, &rest],
        )?;
        // Whoever won, this is the store now.
        let r = tx.query_one(
            "SELECT root_kind, root_params, root_check FROM kmsfs_meta WHERE id = 1",
            &[],
        )?;
        tx.commit()?;
        Ok((r.get(0), r.get(1), r.get(2)))
    })
}
