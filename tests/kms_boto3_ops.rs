//! The operations of kmsfs issue 12 end to end: boto3, configured the
//! ordinary way (region, access keys made by `kmsfs iam`), against `kmsfs
//! kms serve` on a random loopback port. Each operation's answer and each
//! refusal's error code as boto3 reports it (`ClientError`
//! `e.response['Error']['Code']`); boto3's own paginators walking several
//! pages; and the same operations through `kmsfs kms`.

use std::process::Command;

use serde_json::Value;

mod common;

use common::BIN;
use common::kms_server::{AccessKey, KmsServer};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `body` with `kms` (the user `key`) and `other` (a second user, if
/// any) as boto3 KMS clients in region `local`, `err(fn, **kw)` giving the
/// error code of a call that must fail, and `eq(a, b)`; the script must end
/// by printing OK.
fn boto3(s: &KmsServer, key: &AccessKey, other: Option<&AccessKey>, body: &str) -> String {
    let client = |k: &AccessKey| {
        format!(
            "boto3.client('kms', endpoint_url='{}', region_name='local', aws_access_key_id='{}', aws_secret_access_key='{}', config=Config(retries={{'max_attempts': 1}}))",
            s.url(),
            k.id,
            k.secret
        )
    };
    let script = format!(
        r#"import base64, os, time
from botocore.config import Config
kms = {kms}
other = {other}
{body}
print('OK')
"#,
        kms = client(key),
        other = other.map_or("None".to_string(), client),
    );
    let stdout = s.boto3(key, &script);
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
    stdout
}

#[test]
fn tags_descriptions_policies_and_last_usage_through_boto3() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    boto3(
        &s,
        &root,
        Some(&bin),
        r#"
k = kms.create_key(Description='ops', Tags=[{'TagKey': 'team', 'TagValue': 'storage'}])['KeyMetadata']
key, arn = k['KeyId'], k['Arn']

# Tags: added, replaced, listed sorted by key, removed.
kms.tag_resource(KeyId=key, Tags=[{'TagKey': 'b', 'TagValue': '1'}, {'TagKey': 'a', 'TagValue': ''}])
kms.tag_resource(KeyId=arn, Tags=[{'TagKey': 'b', 'TagValue': '2'}])
r = kms.list_resource_tags(KeyId=key)
eq(r['Tags'], [{'TagKey': 'a', 'TagValue': ''}, {'TagKey': 'b', 'TagValue': '2'}, {'TagKey': 'team', 'TagValue': 'storage'}])
eq(r['Truncated'], False)
assert 'NextMarker' not in r
kms.untag_resource(KeyId=key, TagKeys=['a', 'never-there'])
eq([t['TagKey'] for t in kms.list_resource_tags(KeyId=key)['Tags']], ['b', 'team'])
eq(err(kms.tag_resource, KeyId=key, Tags=[{'TagKey': 'aws:owner', 'TagValue': 'x'}]), 'TagException')
eq(err(kms.untag_resource, KeyId=key, TagKeys=['aws:owner']), 'TagException')
eq(err(kms.tag_resource, KeyId=key, Tags=[{'TagKey': 'k' * 129, 'TagValue': 'x'}]), 'ValidationException')
eq(err(kms.tag_resource, KeyId=key, Tags=[{'TagKey': f'many{i}', 'TagValue': ''} for i in range(49)]), 'TagException')
eq(err(kms.create_key, Tags=[{'TagKey': 'AWS:x', 'TagValue': ''}]), 'TagException')
kms.create_alias(AliasName='alias/ops', TargetKeyId=key)
eq(err(kms.list_resource_tags, KeyId='alias/ops'), 'NotFoundException')
eq(err(kms.tag_resource, KeyId='alias/ops', Tags=[{'TagKey': 'c', 'TagValue': ''}]), 'NotFoundException')
eq(err(kms.list_resource_tags, KeyId='1234abcd-12ab-34cd-56ef-1234567890ab'), 'NotFoundException')
eq(err(kms.list_resource_tags, KeyId=key, Marker='bogus'), 'InvalidMarkerException')
eq(err(other.tag_resource, KeyId=key, Tags=[{'TagKey': 'c', 'TagValue': ''}]), 'AccessDeniedException')
eq(err(other.list_resource_tags, KeyId=key), 'AccessDeniedException')

# Descriptions.
kms.update_key_description(KeyId=arn, Description='new words')
eq(kms.describe_key(KeyId=key)['KeyMetadata']['Description'], 'new words')
eq(err(kms.update_key_description, KeyId='alias/ops', Description='x'), 'NotFoundException')
eq(err(kms.update_key_description, KeyId=key, Description='x' * 8193), 'ValidationException')
eq(err(other.update_key_description, KeyId=key, Description='mine'), 'AccessDeniedException')

# Policy names.
r = kms.list_key_policies(KeyId=key)
eq(r['PolicyNames'], ['default'])
eq(r['Truncated'], False)
eq(err(kms.list_key_policies, KeyId=key, Limit=1001), 'ValidationException')
eq(err(other.list_key_policies, KeyId=key), 'AccessDeniedException')
eq([n for p in kms.get_paginator('list_key_policies').paginate(KeyId=key) for n in p['PolicyNames']], ['default'])

# Last usage: none yet, then the Encrypt.
r = kms.get_key_last_usage(KeyId=key)
assert 'KeyLastUsage' not in r or not r['KeyLastUsage'], r
eq(r['KeyId'], arn)
assert r['TrackingStartDate'] >= r['KeyCreationDate'], r
before = time.time()
kms.encrypt(KeyId=key, Plaintext=b'used')
r = kms.get_key_last_usage(KeyId=key)
eq(r['KeyLastUsage']['Operation'], 'Encrypt')
assert abs(r['KeyLastUsage']['Timestamp'].timestamp() - before) < 5, r
eq(err(other.get_key_last_usage, KeyId=key), 'AccessDeniedException')

# Pending deletion: tags and descriptions refused, listing fine.
kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
eq(err(kms.tag_resource, KeyId=key, Tags=[{'TagKey': 'late', 'TagValue': ''}]), 'KMSInvalidStateException')
eq(err(kms.untag_resource, KeyId=key, TagKeys=['b']), 'KMSInvalidStateException')
eq(err(kms.update_key_description, KeyId=key, Description='late'), 'KMSInvalidStateException')
eq(len(kms.list_resource_tags(KeyId=key)['Tags']), 2)
"#,
    );
}

#[test]
fn dry_run_random_material_and_custom_key_stores_through_boto3() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    boto3(
        &s,
        &root,
        Some(&bin),
        r#"
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

key = kms.create_key()['KeyMetadata']['KeyId']
blob = kms.encrypt(KeyId=key, Plaintext=b'secret')['CiphertextBlob']

# DryRun: the checks of the real call, then DryRunOperationException.
for f, kw in [
    (kms.encrypt, dict(KeyId=key, Plaintext=b'x')),
    (kms.decrypt, dict(CiphertextBlob=blob)),
    (kms.re_encrypt, dict(CiphertextBlob=blob, DestinationKeyId=key)),
    (kms.generate_data_key, dict(KeyId=key, KeySpec='AES_256')),
    (kms.generate_data_key_without_plaintext, dict(KeyId=key, NumberOfBytes=16)),
]:
    eq(err(f, DryRun=True, **kw), 'DryRunOperationException')
    eq(err(getattr(other, f.__name__), DryRun=True, **kw), 'AccessDeniedException')
try:
    kms.encrypt(KeyId=key, Plaintext=b'x', DryRun=True)
except ClientError as e:
    eq(e.response['Error']['Message'], 'The request would have succeeded, but the DryRun option is set.')
eq(err(kms.generate_data_key, KeyId=key, NumberOfBytes=1025, DryRun=True), 'ValidationException')
eq(err(kms.decrypt, CiphertextBlob=blob, EncryptionContext={'a': 'b'}, DryRun=True), 'InvalidCiphertextException')
kms.disable_key(KeyId=key)
eq(err(kms.encrypt, KeyId=key, Plaintext=b'x', DryRun=True), 'DisabledException')
eq(err(kms.decrypt, CiphertextBlob=blob, DryRun=True), 'DisabledException')
kms.enable_key(KeyId=key)
# A dry run is no use of the key.
r = kms.get_key_last_usage(KeyId=key)
eq(r['KeyLastUsage']['Operation'], 'Encrypt')

# GenerateRandom: 1..1024 bytes, for callers an identity policy allows
# (root here); names no key, so no key policy can allow it.
eq(len(kms.generate_random(NumberOfBytes=1024)['Plaintext']), 1024)
eq(err(other.generate_random, NumberOfBytes=1), 'AccessDeniedException')
assert kms.generate_random(NumberOfBytes=32)['Plaintext'] != kms.generate_random(NumberOfBytes=32)['Plaintext']
eq(err(kms.generate_random, NumberOfBytes=1025), 'ValidationException')
eq(err(kms.generate_random), 'ValidationException')
eq(err(kms.generate_random, NumberOfBytes=8, CustomKeyStoreId='cks-1234567890abcdef0'), 'CustomKeyStoreNotFoundException')

# Imported material: deleted, the key waits for the same material again.
eq(err(kms.delete_imported_key_material, KeyId=key), 'UnsupportedOperationException')
ext = kms.create_key(Origin='EXTERNAL')['KeyMetadata']['KeyId']
material = os.urandom(32)
def import_material(material, **kw):
    p = kms.get_parameters_for_import(KeyId=ext, WrappingAlgorithm='RSAES_OAEP_SHA_256', WrappingKeySpec='RSA_2048')
    public = serialization.load_der_public_key(p['PublicKey'])
    wrapped = public.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    return kms.import_key_material(KeyId=ext, ImportToken=p['ImportToken'], EncryptedKeyMaterial=wrapped, ExpirationModel='KEY_MATERIAL_DOES_NOT_EXPIRE')
import_material(material)
ext_blob = kms.encrypt(KeyId=ext, Plaintext=b'imported')['CiphertextBlob']
r = kms.delete_imported_key_material(KeyId=ext)
assert r['KeyId'].endswith(ext), r
eq(kms.describe_key(KeyId=ext)['KeyMetadata']['KeyState'], 'PendingImport')
eq(err(kms.decrypt, CiphertextBlob=ext_blob), 'KMSInvalidStateException')
eq(err(other.delete_imported_key_material, KeyId=ext), 'AccessDeniedException')
eq(err(kms.delete_imported_key_material, KeyId=ext, KeyMaterialId='0' * 64), 'NotFoundException')
time.sleep(1.1)  # a new signature for the next GetParametersForImport
try:
    import_material(os.urandom(32))
    raise AssertionError('other material was imported')
except ClientError as e:
    eq(e.response['Error']['Code'], 'IncorrectKeyMaterialException')
time.sleep(1.1)
import_material(material)
eq(kms.describe_key(KeyId=ext)['KeyMetadata']['KeyState'], 'Enabled')
eq(kms.decrypt(CiphertextBlob=ext_blob)['Plaintext'], b'imported')

# Custom key stores: none.
r = kms.describe_custom_key_stores()
eq(r['CustomKeyStores'], [])
eq(r['Truncated'], False)
eq([s for p in kms.get_paginator('describe_custom_key_stores').paginate() for s in p['CustomKeyStores']], [])
eq(err(kms.describe_custom_key_stores, CustomKeyStoreId='cks-1234567890abcdef0'), 'CustomKeyStoreNotFoundException')
eq(err(kms.describe_custom_key_stores, CustomKeyStoreName='hsm'), 'CustomKeyStoreNotFoundException')
eq(err(kms.describe_custom_key_stores, Marker='bogus'), 'InvalidMarkerException')
eq(err(kms.connect_custom_key_store, CustomKeyStoreId='cks-1234567890abcdef1'), 'CustomKeyStoreNotFoundException')
eq(err(kms.disconnect_custom_key_store, CustomKeyStoreId='cks-1234567890abcdef2'), 'CustomKeyStoreNotFoundException')
eq(err(kms.update_custom_key_store, CustomKeyStoreId='cks-1234567890abcdef3', NewCustomKeyStoreName='n'), 'CustomKeyStoreNotFoundException')
eq(err(kms.delete_custom_key_store, CustomKeyStoreId='cks-1234567890abcdef4'), 'CustomKeyStoreNotFoundException')
eq(err(kms.create_custom_key_store, CustomKeyStoreName='hsm', CloudHsmClusterId='cluster-234567abcdefg', TrustAnchorCertificate='cert', KeyStorePassword='secret-password'), 'UnsupportedOperationException')
eq(err(kms.create_custom_key_store, CustomKeyStoreName='xks', CustomKeyStoreType='EXTERNAL_KEY_STORE', XksProxyUriEndpoint='https://xks.example.com', XksProxyUriPath='/kms/xks/v1', XksProxyConnectivity='PUBLIC_ENDPOINT', XksProxyAuthenticationCredential={'AccessKeyId': 'A' * 20, 'RawSecretAccessKey': 'B' * 43}), 'UnsupportedOperationException')
eq(err(kms.create_key, CustomKeyStoreId='cks-1234567890abcdef5'), 'CustomKeyStoreNotFoundException')
eq(err(kms.create_key, Origin='AWS_CLOUDHSM'), 'CustomKeyStoreNotFoundException')
eq(err(kms.create_key, Origin='EXTERNAL_KEY_STORE', Description='x'), 'CustomKeyStoreNotFoundException')
"#,
    );
    // The secrets of the refused CreateCustomKeyStore reach no log.
    let log = std::fs::read_to_string(s.store.with_extension("audit.log")).unwrap_or_default();
    assert!(log.contains("CreateCustomKeyStore"), "{log}");
    assert!(!log.contains("secret-password") && !log.contains(&"B".repeat(43)));
}

#[test]
fn boto3_paginators_walk_every_list() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    boto3(
        &s,
        &root,
        None,
        r#"
keys = sorted(kms.create_key(Description=f'k{i}')['KeyMetadata']['KeyId'] for i in range(7))
pages = list(kms.get_paginator('list_keys').paginate(PaginationConfig={'PageSize': 2}))
assert len(pages) >= 3, pages
eq(sorted(k['KeyId'] for p in pages for k in p['Keys']), keys)
eq([k['KeyId'] for p in pages for k in p['Keys']], keys)  # sorted, as kmsfs pages them
assert all(p['Truncated'] for p in pages[:-1]) and not pages[-1]['Truncated']
eq(len(pages[0]['Keys']), 2)
# Raw markers: Limit bounds, a marker not issued by ListKeys.
first = kms.list_keys(Limit=3)
eq(len(first['Keys']), 3)
eq(first['Truncated'], True)
second = kms.list_keys(Limit=3, Marker=first['NextMarker'])
eq(second['Keys'][0]['KeyId'], keys[3])
eq(err(kms.list_keys, Marker='bogus'), 'InvalidMarkerException')
eq(err(kms.list_keys, Limit=1001), 'ValidationException')
eq(err(kms.list_aliases, Marker=first['NextMarker']), 'InvalidMarkerException')

for i, k in enumerate(keys[:5]):
    kms.create_alias(AliasName=f'alias/page{i}', TargetKeyId=k)
pages = list(kms.get_paginator('list_aliases').paginate(PaginationConfig={'PageSize': 2}))
assert len(pages) >= 3, pages
eq([a['AliasName'] for p in pages for a in p['Aliases']], [f'alias/page{i}' for i in range(5)])

kms.tag_resource(KeyId=keys[0], Tags=[{'TagKey': f't{i}', 'TagValue': str(i)} for i in range(5)])
pages = list(kms.get_paginator('list_resource_tags').paginate(KeyId=keys[0], PaginationConfig={'PageSize': 2}))
eq(len(pages), 3)
eq([t['TagKey'] for p in pages for t in p['Tags']], [f't{i}' for i in range(5)])

for i in range(4):
    if i:
        time.sleep(1.1)  # RotateKeyOnDemand twice in one second is a replay
    kms.rotate_key_on_demand(KeyId=keys[1])
pages = list(kms.get_paginator('list_key_rotations').paginate(KeyId=keys[1], PaginationConfig={'PageSize': 1}))
eq(len(pages), 4)
eq([r['RotationType'] for p in pages for r in p['Rotations']], ['ON_DEMAND'] * 4)
eq(err(kms.list_key_rotations, KeyId=keys[1], Marker='bogus'), 'InvalidMarkerException')
"#,
    );
}

/// The new commands of `kmsfs kms`, on the embedded store and, for one,
/// through `--endpoint-url` against the server.
#[test]
fn kmsfs_kms_tag_random_and_friends() {
    let s = KmsServer::start();
    let key = s.kmsfs_json(&["kms", "create-key", "--tags", "TagKey=team,TagValue=a"])
        ["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = s.kmsfs(&[
        "kms",
        "tag-resource",
        "--key-id",
        &key,
        "--tags",
        "TagKey=b,TagValue=2",
        "TagKey=a,TagValue=1",
    ]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
    let tags = s.kmsfs_json(&["kms", "list-resource-tags", "--key-id", &key]);
    let keys: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["TagKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "b", "team"]);
    let page = s.kmsfs_json(&[
        "kms",
        "list-resource-tags",
        "--key-id",
        &key,
        "--limit",
        "2",
    ]);
    assert_eq!(page["Truncated"], true);
    let marker = page["NextMarker"].as_str().unwrap().to_string();
    let rest = s.kmsfs_json(&[
        "kms",
        "list-resource-tags",
        "--key-id",
        &key,
        "--marker",
        &marker,
    ]);
    assert_eq!(rest["Tags"][0]["TagKey"], "team");
    let out = s.kmsfs(&[
        "kms",
        "untag-resource",
        "--key-id",
        &key,
        "--tag-keys",
        "a",
        "b",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let text_out = s.kmsfs(&[
        "kms",
        "list-resource-tags",
        "--key-id",
        &key,
        "--query",
        "Tags[].TagKey",
        "--output",
        "text",
    ]);
    assert_eq!(String::from_utf8_lossy(&text_out.stdout).trim(), "team");
    let bad = s.kmsfs(&[
        "kms",
        "tag-resource",
        "--key-id",
        &key,
        "--tags",
        "TagKey=aws:x,TagValue=1",
    ]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("TagException"), "{}", text(&bad));

    let random = s.kmsfs_json(&["kms", "generate-random", "--number-of-bytes", "48"]);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(random["Plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 48);
    let bad = s.kmsfs(&["kms", "generate-random", "--number-of-bytes", "2000"]);
    assert!(text(&bad).contains("ValidationException"), "{}", text(&bad));

    let dry = s.kmsfs(&[
        "kms",
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        "aGk=",
        "--dry-run",
    ]);
    assert!(!dry.status.success());
    assert!(
        text(&dry).contains("DryRunOperationException"),
        "{}",
        text(&dry)
    );
    let usage = s.kmsfs_json(&["kms", "get-key-last-usage", "--key-id", &key]);
    assert!(usage.get("KeyLastUsage").is_none(), "{usage}");
    assert!(usage["TrackingStartDate"].is_string(), "{usage}");
    s.kmsfs_json(&["kms", "encrypt", "--key-id", &key, "--plaintext", "aGk="]);
    let usage = s.kmsfs_json(&["kms", "get-key-last-usage", "--key-id", &key]);
    assert_eq!(usage["KeyLastUsage"]["Operation"], "Encrypt");

    let out = s.kmsfs(&[
        "kms",
        "update-key-description",
        "--key-id",
        &key,
        "--description",
        "via cli",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let policies = s.kmsfs_json(&["kms", "list-key-policies", "--key-id", &key]);
    assert_eq!(policies["PolicyNames"][0], "default");
    let stores = s.kmsfs_json(&["kms", "describe-custom-key-stores"]);
    assert_eq!(stores["CustomKeyStores"], serde_json::json!([]));

    // The same through the server.
    let root = s.user_with_key("root");
    let out = Command::new(BIN)
        .args([
            "kms",
            "--endpoint-url",
            &s.url(),
            "list-resource-tags",
            "--key-id",
            &key,
        ])
        .env("AWS_ACCESS_KEY_ID", &root.id)
        .env("AWS_SECRET_ACCESS_KEY", &root.secret)
        .env("AWS_REGION", "local")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let over_http: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(over_http["Tags"][0]["TagKey"], "team");
}

#[test]
fn aliases_through_boto3() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    boto3(
        &s,
        &root,
        Some(&bin),
        r#"
a = kms.create_key(Description='a')['KeyMetadata']
b = kms.create_key(Description='b')['KeyMetadata']
kms.create_alias(AliasName='alias/app', TargetKeyId=a['KeyId'])
eq(kms.describe_key(KeyId='alias/app')['KeyMetadata']['KeyId'], a['KeyId'])
entry = [x for x in kms.list_aliases()['Aliases'] if x['AliasName'] == 'alias/app'][0]
eq(entry['TargetKeyId'], a['KeyId'])
assert entry['AliasArn'].endswith(':alias/app'), entry
eq(err(kms.create_alias, AliasName='alias/app', TargetKeyId=b['KeyId']), 'AlreadyExistsException')
eq(err(kms.create_alias, AliasName='app', TargetKeyId=b['KeyId']), 'ValidationException')
eq(err(kms.create_alias, AliasName='alias/aws/mine', TargetKeyId=b['KeyId']), 'InvalidAliasNameException')
# A target is a key id or ARN, never another alias.
eq(err(kms.create_alias, AliasName='alias/x', TargetKeyId='alias/app'), 'NotFoundException')
# UpdateAlias moves it; the old key keeps working under its id.
kms.update_alias(AliasName='alias/app', TargetKeyId=b['Arn'])
eq(kms.describe_key(KeyId='alias/app')['KeyMetadata']['KeyId'], b['KeyId'])
eq(err(kms.update_alias, AliasName='alias/none', TargetKeyId=a['KeyId']), 'NotFoundException')
eq(err(other.update_alias, AliasName='alias/app', TargetKeyId=a['KeyId']), 'AccessDeniedException')
eq(err(other.delete_alias, AliasName='alias/app'), 'AccessDeniedException')
kms.delete_alias(AliasName='alias/app')
eq(err(kms.describe_key, KeyId='alias/app'), 'NotFoundException')
eq(err(kms.delete_alias, AliasName='alias/app'), 'NotFoundException')
eq([x['AliasName'] for x in kms.list_aliases(KeyId=b['KeyId'])['Aliases']], [])
"#,
    );
}
