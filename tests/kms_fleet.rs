//! A KMS fleet: three `kmsfs kms serve` replicas sharing one PostgreSQL
//! store (a throwaway cluster started by the test), used at once by boto3
//! clients, one replica SIGKILLed mid-load and restarted.
//!
//! Needs PostgreSQL's server binaries (apt-get install postgresql), root
//! (the cluster runs as user postgres) and boto3.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::kms_server::{AccessKey, KmsServer, stderr};
use common::postgres::Postgres;
use serde_json::Value;

struct Fleet {
    pg: Postgres,
    replicas: Vec<KmsServer>,
    root_key: tempfile::TempDir,
}

impl Fleet {
    fn start(n: usize) -> Fleet {
        let pg = Postgres::start();
        let root_key = tempfile::tempdir().unwrap();
        let key_file = root_key.path().join("root.key");
        let replicas = (0..n)
            .map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let audit = dir.path().join("audit.log");
                KmsServer::start_on(
                    dir,
                    pg.url().into(),
                    &[],
                    &[
                        ("AWS_REGION", "local"),
                        ("KMSFS_ROOT_KEY_FILE", key_file.to_str().unwrap()),
                        ("KMSFS_AUDIT_LOG", audit.to_str().unwrap()),
                    ],
                )
            })
            .collect::<Vec<_>>();
        Fleet {
            pg,
            replicas,
            root_key,
        }
    }

    fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.url()).collect()
    }
}

/// A boto3 script with `kms(url)` (a client of that replica as `key`);
/// started, not waited for.
fn boto3_spawn(key: &AccessKey, body: &str) -> std::process::Child {
    let script = format!(
        "import boto3, json, sys, threading, base64\n\
         from botocore.config import Config\n\
         def kms(url):\n    return boto3.client('kms', endpoint_url=url, region_name='local', aws_access_key_id='{}', aws_secret_access_key='{}', config=Config(retries={{'max_attempts': 1}}, connect_timeout=2, read_timeout=10))\n\
         {body}\n",
        key.id, key.secret
    );
    Command::new("python3")
        .args(["-c", &script])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with boto3")
}

fn boto3_wait(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "boto3: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn three_replicas_share_one_postgres_store_through_a_sigkill() {
    let mut fleet = Fleet::start(3);
    let admin = fleet.replicas[0].user_with_key("root");
    // The store was created once: every replica sees the one meta row and
    // the schema's version.
    assert_eq!(fleet.pg.psql("SELECT count(*) FROM kmsfs_meta").trim(), "1");
    assert_eq!(
        fleet
            .pg
            .psql("SELECT max(version) FROM kmsfs_schema_migrations")
            .trim(),
        "1"
    );

    // One shared key that two replicas rotate, disable and enable at once.
    let urls = fleet.urls();
    let shared = boto3_wait(boto3_spawn(
        &admin,
        &format!(
            "print(kms('{}').create_key(Description='shared')['KeyMetadata']['KeyId'])",
            urls[0]
        ),
    ))
    .trim()
    .to_string();

    // Load: one thread per replica creates keys and encrypts under them,
    // printing each acknowledged (key, ciphertext) pair; a thread on
    // replica 3 stops at its first error (it is killed meanwhile). Two
    // more threads race on the shared key through replicas 1 and 2.
    let load = boto3_spawn(
        &admin,
        &format!(
            r#"
urls = {urls:?}
shared = '{shared}'
lock = threading.Lock()
def out(*a):
    with lock:
        print(json.dumps(a), flush=True)
def worker(i):
    c = kms(urls[i])
    for n in range(25):
        try:
            k = c.create_key(Description=f'r{{i}}-{{n}}')['KeyMetadata']['KeyId']
            out('key', k)
            ct = c.encrypt(KeyId=k, Plaintext=f'{{k}}-{{n}}'.encode())['CiphertextBlob']
            out('ct', k, base64.b64encode(ct).decode(), f'{{k}}-{{n}}')
            g = c.create_grant(KeyId=k, GranteePrincipal='arn:aws:iam::000000000000:user/root', Operations=['Decrypt'])
            out('grant', k, g['GrantId'])
        except Exception as e:
            if i == 2:
                return
            raise
def racer(i):
    c = kms(urls[i])
    for n in range(10):
        c.rotate_key_on_demand(KeyId=shared) if n % 5 == 0 and i == 0 else None
        c.disable_key(KeyId=shared)
        c.enable_key(KeyId=shared)
        ct = c.encrypt(KeyId=shared, Plaintext=b'shared')['CiphertextBlob']
        out('ct', shared, base64.b64encode(ct).decode(), 'shared')
ts = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
ts += [threading.Thread(target=racer, args=(i,)) for i in range(2)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(['done']), flush=True)
"#
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    fleet.replicas[2].kill();
    std::thread::sleep(Duration::from_millis(300));
    fleet.replicas[2].restart();
    let lines = boto3_wait(load);
    let events: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(events.last().unwrap()[0], "done");
    let keys: Vec<&str> = events
        .iter()
        .filter(|e| e[0] == "key")
        .map(|e| e[1].as_str().unwrap())
        .collect();
    assert!(keys.len() >= 50, "only {} keys acknowledged", keys.len());

    // Every acknowledged change is there, seen the same from every replica
    // (the restarted one included); every ciphertext decrypts through
    // every replica.
    let urls = fleet.urls();
    let check = boto3_wait(boto3_spawn(
        &admin,
        &format!(
            r#"
urls = {urls:?}
events = {events}
views = []
for u in urls:
    c = kms(u)
    ids = sorted(k['KeyId'] for p in c.get_paginator('list_keys').paginate() for k in p['Keys'])
    states = {{k: c.describe_key(KeyId=k)['KeyMetadata']['KeyState'] for k in ids}}
    rot = [r['KeyId'] for r in c.list_key_rotations(KeyId='{shared}')['Rotations']]
    grants = sorted(g['GrantId'] for e in events if e[0] == 'grant' for g in c.list_grants(KeyId=e[1])['Grants'])
    views.append((ids, states, len(rot), grants))
    for e in events:
        if e[0] == 'key':
            assert e[1] in ids, (u, e)
        if e[0] == 'ct':
            pt = c.decrypt(CiphertextBlob=base64.b64decode(e[2]))['Plaintext'].decode()
            assert pt == e[3], (u, e, pt)
        if e[0] == 'grant':
            assert e[2] in grants, (u, e)
assert all(v == views[0] for v in views), 'replicas disagree'
assert views[0][1]['{shared}'] == 'Enabled', views[0][1]['{shared}']
print(len(views[0][0]), views[0][2])
"#,
            events = serde_json::to_string(&events).unwrap()
        ),
    ));
    let mut counts = check.split_whitespace();
    let total: usize = counts.next().unwrap().parse().unwrap();
    let rotations: usize = counts.next().unwrap().parse().unwrap();
    assert!(
        total > keys.len(),
        "{total} keys listed, {} acknowledged",
        keys.len()
    );
    assert_eq!(rotations, 2, "the shared key's on-demand rotations");
    // The database holds sealed rows only: no key's description in clear.
    let dump = fleet
        .pg
        .psql("SELECT encode(sealed, 'escape') FROM kmsfs_keys");
    assert!(!dump.contains("shared"), "a key row is not sealed");
    drop(fleet.root_key);
}
