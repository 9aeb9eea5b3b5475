//! Seeds made with the fixed keys of the bodies, so the fuzzer starts from
//! authentic ciphertext. Written by the ignored test `write_generated_seeds`.

use std::path::Path;

use kmsfs_format::cipher::{CipherSuite, DataKey, new_aead};
use kmsfs_format::content::{FileContent, Layout, MemIo};
use kmsfs_format::header::FormatVersion;
use kmsfs_format::names::NameKeys;
use kmsfs_kms::protocol::Operation;
use kmsfs_kms::store;

use super::{FIXED_DIR, FIXED_FILE_ID, FIXED_KEY, XATTR_STORED_NAME, root_key};

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("seed-gen-{name}")), data)
}

fn prefixed(first: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend_from_slice(rest);
    out
}

/// Writes every generated seed under `corpus/<target>/`.
pub fn write_all(corpus: &Path) -> std::io::Result<()> {
    // content_blocks: files written with the fixed key, and plaintexts.
    let plain: Vec<u8> = (0..9000u32).map(|i| (i * 7 % 251) as u8).collect();
    for flags in [0u8, 1, 2, 3] {
        let version = if flags & 1 == 0 {
            FormatVersion::V1
        } else {
            FormatVersion::V2
        };
        let suite = if flags & 2 == 0 {
            CipherSuite::Aes256Gcm
        } else {
            CipherSuite::ChaCha20Poly1305
        };
        let aead = new_aead(suite, &FIXED_KEY);
        let content = FileContent {
            aead: &*aead,
            file_id: FIXED_FILE_ID,
            layout: Layout {
                header_len: 0,
                version,
            },
        };
        for (len, at) in [(0usize, 0u64), (10, 0), (4106, 0), (100, 9000)] {
            let io = MemIo::new(Vec::new());
            content.seal_empty(&io).map_err(std::io::Error::other)?;
            content
                .write(&io, at, &plain[..len])
                .map_err(std::io::Error::other)?;
            write(
                corpus,
                "content_blocks",
                &format!("file-{flags}-{len}-{at}"),
                &prefixed(flags, &io.bytes()),
            )?;
        }
        write(
            corpus,
            "content_blocks",
            &format!("write-{flags}"),
            &prefixed(flags | 4 | (3 << 3), &plain[..5000]),
        )?;
    }

    // key_store: the JSON of the v2 fixture store.
    let fixture = include_bytes!("../../../tests/fixtures/volume_v2/keystore");
    let data = store::parse_store_bytes(fixture, &root_key(1)).map_err(std::io::Error::other)?;
    let json = serde_json::to_vec(&data).map_err(std::io::Error::other)?;
    write(corpus, "key_store", "json-v2", &prefixed(2, &json))?;

    // names: every stored form, and plaintexts.
    let keys = NameKeys::derive(&DataKey::from_slice(&FIXED_KEY).map_err(std::io::Error::other)?);
    let err = |_| std::io::Error::other("name");
    let short = keys.encrypt_name(&FIXED_DIR, b"hello.txt").map_err(err)?;
    write(
        corpus,
        "names",
        "short",
        &prefixed(0, short.entry().as_bytes()),
    )?;
    if let kmsfs_format::names::BackingName::Long {
        side_file, encoded, ..
    } = keys.encrypt_name(&FIXED_DIR, &[b'x'; 200]).map_err(err)?
    {
        write(corpus, "names", "long", &prefixed(0, encoded.as_bytes()))?;
        write(corpus, "names", "side", &prefixed(0, side_file.as_bytes()))?;
    }
    let link = keys.encrypt_link(b"../some/target\x01").map_err(err)?;
    write(corpus, "names", "link", &prefixed(1, &link))?;
    let xname = keys.encrypt_xattr_name(b"user.comment").map_err(err)?;
    write(
        corpus,
        "names",
        "xattr-name",
        &prefixed(2, xname.as_bytes()),
    )?;
    let value = keys.encrypt_xattr_value(XATTR_STORED_NAME, b"a value");
    write(corpus, "names", "xattr-value", &prefixed(3, &value))?;
    write(corpus, "names", "dirid", &prefixed(4, &[0x11; 16]))?;
    write(corpus, "names", "plain-name", &prefixed(5, b"notes.md"))?;
    write(corpus, "names", "plain-link", &prefixed(6, b"/etc/passwd"))?;
    write(
        corpus,
        "names",
        "plain-xattr-name",
        &prefixed(7, b"user.mime_type"),
    )?;
    write(
        corpus,
        "names",
        "plain-xattr-value",
        &prefixed(8, b"text/plain"),
    )?;

    // kms_json_request: one body per operation.
    let blob = "S0IBjXozM+KbRnWKw+muXjMcAwAAAAHjwIbQ3r383qrCY0nbiSHngq3scOYUc/8SHj9hJJBcYCtyfil1QwbsLUqHbiVwKStCm5/g7y5PjTJE2Kk=";
    for (index, op) in Operation::ALL.iter().enumerate() {
        let body = match op {
            Operation::CreateKey => r#"{"Description":"d","KeyUsage":"ENCRYPT_DECRYPT","Origin":"AWS_KMS","Tags":[{"TagKey":"k","TagValue":"v"}]}"#.to_string(),
            Operation::ListKeys | Operation::ListAliases => r#"{"Limit":10,"Marker":"m"}"#.to_string(),
            Operation::CreateAlias | Operation::UpdateAlias => {
                r#"{"AliasName":"alias/x","TargetKeyId":"1234abcd-12ab-34cd-56ef-1234567890ab"}"#.to_string()
            }
            Operation::DeleteAlias => r#"{"AliasName":"alias/x"}"#.to_string(),
            Operation::ScheduleKeyDeletion => r#"{"KeyId":"alias/x","PendingWindowInDays":7}"#.to_string(),
            Operation::EnableKeyRotation => r#"{"KeyId":"alias/x","RotationPeriodInDays":90}"#.to_string(),
            Operation::Encrypt => r#"{"KeyId":"alias/x","Plaintext":"aGk=","EncryptionContext":{"purpose":"test"}}"#.to_string(),
            Operation::Decrypt => format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"kmsfs:purpose":"file-names"}}}}"#),
            Operation::ReEncrypt => format!(r#"{{"CiphertextBlob":"{blob}","DestinationKeyId":"alias/y"}}"#),
            Operation::GenerateDataKey | Operation::GenerateDataKeyWithoutPlaintext => {
                r#"{"KeyId":"alias/x","KeySpec":"AES_256","NumberOfBytes":32}"#.to_string()
            }
            Operation::GetKeyPolicy => r#"{"KeyId":"alias/x","PolicyName":"default"}"#.to_string(),
            Operation::PutKeyPolicy => r#"{"KeyId":"alias/x","PolicyName":"default","Policy":"{\"Version\":\"2012-10-17\",\"Statement\":[]}"}"#.to_string(),
            Operation::GetParametersForImport => r#"{"KeyId":"alias/x","WrappingAlgorithm":"RSAES_OAEP_SHA_256","WrappingKeySpec":"RSA_2048"}"#.to_string(),
            Operation::ImportKeyMaterial => r#"{"KeyId":"alias/x","ImportToken":"aGk=","EncryptedKeyMaterial":"aGk=","ExpirationModel":"KEY_MATERIAL_DOES_NOT_EXPIRE","ValidTo":1700000000}"#.to_string(),
            Operation::TagResource => r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Tags":[{"TagKey":"k","TagValue":""}]}"#.to_string(),
            Operation::UntagResource => r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","TagKeys":["k"]}"#.to_string(),
            Operation::ListResourceTags | Operation::ListKeyPolicies | Operation::ListKeyRotations => {
                r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Limit":10,"Marker":"m"}"#.to_string()
            }
            Operation::UpdateKeyDescription => r#"{"KeyId":"1234abcd-12ab-34cd-56ef-1234567890ab","Description":"d"}"#.to_string(),
            Operation::GenerateRandom => r#"{"NumberOfBytes":32}"#.to_string(),
            Operation::CreateCustomKeyStore => r#"{"CustomKeyStoreName":"n","CustomKeyStoreType":"AWS_CLOUDHSM"}"#.to_string(),
            Operation::DescribeCustomKeyStores => r#"{"Limit":10}"#.to_string(),
            Operation::ConnectCustomKeyStore
            | Operation::DisconnectCustomKeyStore
            | Operation::UpdateCustomKeyStore
            | Operation::DeleteCustomKeyStore => r#"{"CustomKeyStoreId":"cks-1"}"#.to_string(),
            _ => r#"{"KeyId":"alias/x"}"#.to_string(),
        };
        let index = u8::try_from(index).map_err(std::io::Error::other)?;
        write(
            corpus,
            "kms_json_request",
            op.name(),
            &prefixed(index, body.as_bytes()),
        )?;
    }
    Ok(())
}
