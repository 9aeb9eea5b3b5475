//! Crypto-core throughput: seal and open, per cipher and per request size.
//!
//! Two layers are measured, both in plaintext bytes per second:
//!
//! - `aead/…`: the bare [`BlockAead`] on 4 KiB blocks (one block per
//!   iteration, and 16 consecutive blocks = 64 KiB), the floor of what the
//!   content layer can do;
//! - `content/…`: [`FileContent::write`] / [`FileContent::read`] over an
//!   in-memory backing file ([`MemIo`]) for 4 KiB, 64 KiB and 1 MiB
//!   block-aligned requests: nonce generation, AAD, buffer handling and
//!   copies included, no disk and no FUSE.
//!
//! Run: `cargo bench --bench crypto` (add `-- --quick` for a short run).
//! Compare with the machine ceiling: `openssl speed -evp aes-256-gcm`
//! (see benches/README.md).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kmsfs_format::cipher::{BlockAead, CipherSuite, DataKey, NONCE_LEN, TAG_LEN, new_aead};
use kmsfs_format::content::{BLOCK_SIZE, FileContent, Layout, MemIo};
use kmsfs_format::header::FormatVersion;

const FILE_ID: [u8; 16] = [0x42; 16];
/// The header sits at the start of the backing file in the default layout.
const HEADER_LEN: u64 = 1024;

fn aad(block_no: u64) -> [u8; 24] {
    let mut a = [0u8; 24];
    a[..16].copy_from_slice(&FILE_ID);
    a[16..].copy_from_slice(&block_no.to_be_bytes());
    a
}

/// Bare AEAD: seal/open `n_blocks` consecutive 4 KiB blocks.
fn bench_aead(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead");
    for suite in CipherSuite::ALL {
        let key = DataKey::random();
        let aead: Box<dyn BlockAead> = new_aead(suite, key.as_bytes());
        let nonce = [7u8; NONCE_LEN];
        for n_blocks in [1usize, 16] {
            let len = n_blocks * BLOCK_SIZE;
            g.throughput(Throughput::Bytes(len as u64));
            let label = format!("{}KiB", len / 1024);

            let mut buf = vec![0x5au8; len];
            g.bench_with_input(
                BenchmarkId::new(format!("seal/{}", suite.name()), &label),
                &n_blocks,
                |b, _| {
                    b.iter(|| {
                        let mut tags = [[0u8; TAG_LEN]; 16];
                        for (i, blk) in buf.chunks_mut(BLOCK_SIZE).enumerate() {
                            tags[i] = aead.seal_detached(&nonce, &aad(i as u64), blk);
                        }
                        black_box(tags)
                    })
                },
            );

            // Prepare genuine ciphertext, then time open on a fresh copy each
            // iteration (the copy is a memcpy of `len`, small next to AEAD).
            let mut sealed = vec![0x5au8; len];
            let tags: Vec<[u8; TAG_LEN]> = sealed
                .chunks_mut(BLOCK_SIZE)
                .enumerate()
                .map(|(i, blk)| aead.seal_detached(&nonce, &aad(i as u64), blk))
                .collect();
            let mut work = sealed.clone();
            g.bench_with_input(
                BenchmarkId::new(format!("open/{}", suite.name()), &label),
                &n_blocks,
                |b, _| {
                    b.iter(|| {
                        work.copy_from_slice(&sealed);
                        for (i, blk) in work.chunks_mut(BLOCK_SIZE).enumerate() {
                            aead.open_detached(&nonce, &aad(i as u64), blk, &tags[i])
                                .expect("authentic block");
                        }
                        black_box(&work);
                    })
                },
            );
        }
    }
    g.finish();
}

/// Content layer: block-aligned write and read of 4 KiB, 64 KiB, 1 MiB.
fn bench_content(c: &mut Criterion) {
    let mut g = c.benchmark_group("content");
    for suite in CipherSuite::ALL {
        let key = DataKey::random();
        let aead = new_aead(suite, key.as_bytes());
        let content = FileContent {
            aead: &*aead,
            file_id: FILE_ID,
            layout: Layout {
                header_len: HEADER_LEN,
                version: FormatVersion::V1,
            },
        };
        for len in [4usize << 10, 64 << 10, 1 << 20] {
            g.throughput(Throughput::Bytes(len as u64));
            let label = if len >= 1 << 20 {
                format!("{}MiB", len >> 20)
            } else {
                format!("{}KiB", len >> 10)
            };
            let data = vec![0x5au8; len];

            // Overwrite in place at offset 0 of a file already `len` long:
            // whole blocks, so no read-modify-write, as the kernel sends
            // large aligned writes.
            let io = MemIo::new(vec![0xa5; HEADER_LEN as usize]);
            content.write(&io, 0, &data).expect("initial write");
            g.bench_with_input(
                BenchmarkId::new(format!("write/{}", suite.name()), &label),
                &len,
                |b, _| b.iter(|| content.write(&io, 0, black_box(&data)).expect("write")),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("read/{}", suite.name()), &label),
                &len,
                |b, &len| b.iter(|| black_box(content.read(&io, 0, len).expect("read"))),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_aead, bench_content);
criterion_main!(benches);
