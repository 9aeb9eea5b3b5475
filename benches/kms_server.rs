//! Benchmark (not a test) of `kmsfs kms serve`: Encrypt, Decrypt and
//! GenerateDataKey through the server with 1, 8 and 64 concurrent clients
//! (requests per second, p50 and p99 latency), then the key-service cost of
//! opening 10,000 files of a remote-KMS volume with and without the data key
//! cache.
//!
//!     cargo bench --bench kms_server [-- SECONDS_PER_RUN]
//!
//! Everything runs in this process on loopback: a temporary key store, the
//! server on 127.0.0.1:0, SigV4-signing clients (one connection each).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;

use kmsfs_kms::cache::{CacheLimits, CachingKms};
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::local::{CreateKeyInput, LocalKms};
use kmsfs_kms::remote::{Credentials, KmsClient, RemoteKms};
use kmsfs_kms::store::RootSecret;
use kmsfs_kms::{Caller, EncryptionContext, KeyService};
use kmsfs_kms_server::{self as server, ServeOptions};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; the first number among the arguments
    // is the length of each run in seconds.
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().expect("temp dir");
    let me = Caller::current();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .expect("a named Unix user")
        .name;
    let kms = Arc::new(
        LocalKms::open(
            &dir.path().join("keystore"),
            &RootSecret::KeyFile,
            Arc::new(SystemClock),
        )
        .expect("store"),
    );
    let arn = kms
        .create_key(&me, CreateKeyInput::default())
        .expect("key")
        .arn;
    let (id, secret) = kms
        .iam_update(|iam, now| {
            iam.create_user(&user, now, kmsfs_kms::iam::UnixLink::IfExists)?;
            iam.create_access_key(&user, now)
        })
        .expect("access key");
    let creds = Credentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token: None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server_kms = kms.clone();
    std::thread::spawn(move || {
        let opts = ServeOptions {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            // The server's own throughput is measured, not the quota.
            requests_per_second: 0,
            ..ServeOptions::default()
        };
        server::serve(server_kms, opts, |addr, _| {
            let _ = tx.send(addr);
        })
        .expect("serve");
    });
    let addr = rx.recv().expect("server address").expect("tcp address");
    let url = format!("http://{addr}");
    let client = || KmsClient::new(&url, Some(creds.clone()), "local").expect("client");

    let plaintext = B64.encode([7u8; 32]);
    let blob = client()
        .call("Encrypt", &json!({"KeyId": arn, "Plaintext": plaintext}))
        .expect("encrypt")["CiphertextBlob"]
        .as_str()
        .unwrap()
        .to_string();
    println!(
        "# kmsfs kms serve on {addr}, {} s per run, {} CPUs",
        seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| operation | clients | requests/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (op, request) in [
        ("Encrypt", json!({"KeyId": arn, "Plaintext": plaintext})),
        ("Decrypt", json!({"CiphertextBlob": blob})),
        (
            "GenerateDataKey",
            json!({"KeyId": arn, "KeySpec": "AES_256"}),
        ),
    ] {
        for clients in [1usize, 8, 64] {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let started = Instant::now();
            let threads: Vec<_> = (0..clients)
                .map(|_| {
                    let c = client();
                    let request = request.clone();
                    std::thread::spawn(move || {
                        let mut lat = Vec::new();
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            c.call(op, &request).expect("request");
                            lat.push(t.elapsed());
                        }
                        lat
                    })
                })
                .collect();
            let mut all: Vec<Duration> = threads
                .into_iter()
                .flat_map(|t| t.join().expect("client thread"))
                .collect();
            let elapsed = started.elapsed().as_secs_f64();
            all.sort();
            println!(
                "| {op} | {clients} | {:.0} | {:.2} | {:.2} |",
                all.len() as f64 / elapsed,
                percentile(&all, 0.50).as_secs_f64() * 1e3,
                percentile(&all, 0.99).as_secs_f64() * 1e3,
            );
        }
    }

    // Opening 10,000 files = unwrapping 10,000 file data keys. The files were
    // written earlier (their wrapped keys made directly in the store, so
    // that this part times only opens); each is opened twice, as a file is
    // read again later.
    const FILES: usize = 10_000;
    let wrapped: Vec<(Vec<u8>, EncryptionContext)> = (0..FILES)
        .map(|i| {
            let ctx: EncryptionContext = [("file".to_string(), format!("f{i}"))].into();
            let pair = kms
                .generate_data_key(&me, &arn, 32, &ctx, false)
                .expect("data key");
            (pair.ciphertext_blob, ctx)
        })
        .collect();
    println!();
    println!("| opening {FILES} files (twice) | first pass s | second pass s | KMS round trips |");
    println!("|---|---:|---:|---:|");
    let remote: Arc<dyn KeyService> = Arc::new(RemoteKms::new(client()));
    for (name, service, cached) in [
        ("without cache", remote.clone(), None),
        (
            "with cache (10000 keys, 60 s)",
            Arc::new(CachingKms::new(
                remote.clone(),
                CacheLimits::default(),
                Arc::new(SystemClock),
            )) as Arc<dyn KeyService>,
            Some(()),
        ),
    ] {
        let mut passes = Vec::new();
        for _ in 0..2 {
            let t = Instant::now();
            for (blob, ctx) in &wrapped {
                service.decrypt(&me, blob, ctx).expect("decrypt");
            }
            passes.push(t.elapsed().as_secs_f64());
        }
        let trips = if cached.is_some() { FILES } else { 2 * FILES };
        println!("| {name} | {:.2} | {:.2} | {trips} |", passes[0], passes[1]);
    }
    // Files this mount created itself: their keys are cached from the start.
    let cache = CachingKms::new(remote, CacheLimits::default(), Arc::new(SystemClock));
    let fresh: Vec<(Vec<u8>, EncryptionContext)> = (0..1000)
        .map(|i| {
            let ctx: EncryptionContext = [("file".to_string(), format!("n{i}"))].into();
            (
                cache
                    .generate_data_key(&me, &arn, &ctx)
                    .expect("data key")
                    .ciphertext_blob,
                ctx,
            )
        })
        .collect();
    let t = Instant::now();
    for (blob, ctx) in &fresh {
        cache.decrypt(&me, blob, ctx).expect("decrypt");
    }
    println!(
        "\nopening 1000 files this mount just created, with the cache: {:.4} s ({:?})",
        t.elapsed().as_secs_f64(),
        cache.stats()
    );
}
