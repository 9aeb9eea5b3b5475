//! Multi-Region keys end to end: boto3 against `kmsfs kms serve` (a primary
//! in us-east-1, its replica in eu-west-1, ciphertexts crossing between
//! them, policies of their own, shared rotation, UpdatePrimaryRegion,
//! deletion of a primary with replicas, and every refusal's error code),
//! and `kmsfs kms create-key --multi-region` / `replicate-key` /
//! `update-primary-region` on the embedded store.

mod common;

use common::kms_server::KmsServer;

const ACCOUNT: &str = "111122223333";

fn server() -> KmsServer {
    KmsServer::start_with(
        &[],
        &[("KMSFS_ACCOUNT_ID", ACCOUNT), ("AWS_REGION", "us-east-1")],
    )
}

#[test]
fn replicas_interoperate_with_their_own_policies() {
    let s = server();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    let setup = s.boto3(
        &root,
        &format!(
            r#"
us, eu = kms('us-east-1'), kms('eu-west-1')
meta = us.create_key(MultiRegion=True, Description='primary')['KeyMetadata']
key = meta['KeyId']
assert key.startswith('mrk-') and len(key) == 36, key
assert meta['MultiRegion'] is True
assert meta['Arn'] == 'arn:aws:kms:us-east-1:{ACCOUNT}:key/' + key
cfg = meta['MultiRegionConfiguration']
assert cfg == {{'MultiRegionKeyType': 'PRIMARY',
                'PrimaryKey': {{'Arn': meta['Arn'], 'Region': 'us-east-1'}},
                'ReplicaKeys': []}}, cfg
single = us.create_key()['KeyMetadata']
assert single['MultiRegion'] is False and 'MultiRegionConfiguration' not in single

policy = json.dumps({{'Version': '2012-10-17', 'Statement': [
    {{'Effect': 'Allow', 'Principal': {{'User': ['root']}}, 'Action': 'kms:*', 'Resource': '*'}},
    {{'Effect': 'Allow', 'Principal': {{'User': ['bin']}},
      'Action': ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey', 'kms:ReEncrypt*'], 'Resource': '*'}}]}})
r = us.replicate_key(KeyId=key, ReplicaRegion='eu-west-1', Policy=policy,
                     Description='replica', Tags=[{{'TagKey': 'site', 'TagValue': 'dublin'}}])
rm = r['ReplicaKeyMetadata']
eu_arn = 'arn:aws:kms:eu-west-1:{ACCOUNT}:key/' + key
assert rm['KeyId'] == key and rm['Arn'] == eu_arn, rm
assert rm['Description'] == 'replica' and rm['KeyState'] == 'Enabled' and rm['MultiRegion'] is True
assert rm['MultiRegionConfiguration']['MultiRegionKeyType'] == 'REPLICA'
assert rm['MultiRegionConfiguration']['PrimaryKey'] == {{'Arn': meta['Arn'], 'Region': 'us-east-1'}}
assert json.loads(r['ReplicaPolicy']) == json.loads(policy)
assert r['ReplicaTags'] == [{{'TagKey': 'site', 'TagValue': 'dublin'}}]
# Each key keeps its own description, tags and policy.
pm = us.describe_key(KeyId=key)['KeyMetadata']
assert pm['Description'] == 'primary'
assert pm['MultiRegionConfiguration']['ReplicaKeys'] == [{{'Arn': eu_arn, 'Region': 'eu-west-1'}}]
assert eu.describe_key(KeyId=key)['KeyMetadata']['MultiRegionConfiguration'] == rm['MultiRegionConfiguration'] | {{'ReplicaKeys': [{{'Arn': eu_arn, 'Region': 'eu-west-1'}}]}}
assert eu.list_resource_tags(KeyId=key)['Tags'] == [{{'TagKey': 'site', 'TagValue': 'dublin'}}]
assert us.list_resource_tags(KeyId=key)['Tags'] == []
assert json.loads(us.get_key_policy(KeyId=key, PolicyName='default')['Policy']) != json.loads(policy)
assert [k['KeyId'] for k in eu.list_keys()['Keys']] == [key]

# Ciphertexts cross in both directions; the answer names the region's own key.
b_us = us.encrypt(KeyId=key, Plaintext=b'from us')['CiphertextBlob']
d = eu.decrypt(CiphertextBlob=b_us)
assert d['Plaintext'] == b'from us' and d['KeyId'] == eu_arn, d['KeyId']
b_eu = eu.encrypt(KeyId=eu_arn, Plaintext=b'from eu')['CiphertextBlob']
assert us.decrypt(CiphertextBlob=b_eu, KeyId=key)['Plaintext'] == b'from eu'
dk = eu.generate_data_key(KeyId=key, KeySpec='AES_256')
assert us.decrypt(CiphertextBlob=dk['CiphertextBlob'])['Plaintext'] == dk['Plaintext']
re = eu.re_encrypt(CiphertextBlob=b_us, DestinationKeyId=key)
assert re['SourceKeyId'] == eu_arn and re['KeyId'] == eu_arn
assert us.decrypt(CiphertextBlob=re['CiphertextBlob'])['Plaintext'] == b'from us'
# A single-Region key's ciphertext stays in its region; no replica, no use.
b_single = us.encrypt(KeyId=single['KeyId'], Plaintext=b'x')['CiphertextBlob']
assert code(eu.decrypt, CiphertextBlob=b_single)[0] == 'InvalidCiphertextException'
assert code(kms('ap-south-1').decrypt, CiphertextBlob=b_us)[0] == 'InvalidCiphertextException'
print(json.dumps({{'key': key, 'b_us': b_us.hex()}}))
"#
        ),
    );
    let v: serde_json::Value = serde_json::from_str(setup.trim()).unwrap();
    let key = v["key"].as_str().unwrap();
    let b_us = v["b_us"].as_str().unwrap();
    // bin is a user of the replica only: allowed in eu-west-1, denied in
    // us-east-1 (the primary's default policy names only its creator).
    s.boto3(
        &bin,
        &format!(
            r#"
us, eu = kms('us-east-1'), kms('eu-west-1')
blob = bytes.fromhex('{b_us}')
assert eu.decrypt(CiphertextBlob=blob)['Plaintext'] == b'from us'
assert eu.encrypt(KeyId='{key}', Plaintext=b'y')['KeyId'].startswith('arn:aws:kms:eu-west-1:')
assert code(us.decrypt, CiphertextBlob=blob)[0] == 'AccessDeniedException'
assert code(us.encrypt, KeyId='{key}', Plaintext=b'y')[0] == 'AccessDeniedException'
# Not an administrator of either key: no replicating, in either region.
assert code(eu.replicate_key, KeyId='{key}', ReplicaRegion='ap-south-1')[0] == 'AccessDeniedException'
assert code(us.replicate_key, KeyId='{key}', ReplicaRegion='ap-south-1')[0] == 'AccessDeniedException'
"#
        ),
    );
}

#[test]
fn rotation_primary_region_deletion_and_refusals() {
    let s = server();
    let root = s.user_with_key("root");
    s.boto3(
        &root,
        r#"
us, eu, ap = kms('us-east-1'), kms('eu-west-1'), kms('ap-south-1')
key = us.create_key(MultiRegion=True)['KeyMetadata']['KeyId']
single = us.create_key()['KeyMetadata']['KeyId']
us.replicate_key(KeyId=key, ReplicaRegion='eu-west-1')

# Refusals, with AWS's codes.
def c(f, **kw):
    return code(f, **kw)[0]
assert c(us.replicate_key, KeyId=single, ReplicaRegion='eu-west-1') == 'UnsupportedOperationException'
assert c(eu.replicate_key, KeyId=key, ReplicaRegion='ap-south-1') == 'UnsupportedOperationException'
assert c(us.replicate_key, KeyId=key, ReplicaRegion='eu-west-1') == 'AlreadyExistsException'
assert c(us.replicate_key, KeyId=key, ReplicaRegion='us-east-1') == 'AlreadyExistsException'
assert c(us.replicate_key, KeyId=key, ReplicaRegion='EU_WEST') == 'ValidationException'
assert c(us.replicate_key, KeyId='mrk-00000000000000000000000000000000', ReplicaRegion='ap-south-1') == 'NotFoundException'
assert c(ap.replicate_key, KeyId=key, ReplicaRegion='eu-central-1') == 'NotFoundException'
assert c(us.create_key, MultiRegion=True, Origin='EXTERNAL') == 'UnsupportedOperationException'
assert c(us.update_primary_region, KeyId=single, PrimaryRegion='eu-west-1') == 'UnsupportedOperationException'
assert c(eu.update_primary_region, KeyId=key, PrimaryRegion='us-east-1') == 'UnsupportedOperationException'
assert c(us.update_primary_region, KeyId=key, PrimaryRegion='ap-south-1') == 'NotFoundException'

# Rotation: set and run on the primary only; every version reaches the replica.
before = us.encrypt(KeyId=key, Plaintext=b'v1')['CiphertextBlob']
assert c(eu.rotate_key_on_demand, KeyId=key) == 'UnsupportedOperationException'
assert c(eu.enable_key_rotation, KeyId=key) == 'UnsupportedOperationException'
assert c(eu.disable_key_rotation, KeyId=key) == 'UnsupportedOperationException'
us.rotate_key_on_demand(KeyId=key)
after = eu.encrypt(KeyId=key, Plaintext=b'v2')['CiphertextBlob']
for client in (us, eu):
    assert client.decrypt(CiphertextBlob=before)['Plaintext'] == b'v1'
    assert client.decrypt(CiphertextBlob=after)['Plaintext'] == b'v2'
assert len(eu.list_key_rotations(KeyId=key)['Rotations']) == 1
us.enable_key_rotation(KeyId=key, RotationPeriodInDays=120)
st = eu.get_key_rotation_status(KeyId=key)
assert st['KeyRotationEnabled'] is True and st['RotationPeriodInDays'] == 120, st

# UpdatePrimaryRegion: the roles swap, and rotation moves with them.
us.update_primary_region(KeyId=key, PrimaryRegion='eu-west-1')
em = eu.describe_key(KeyId=key)['KeyMetadata']['MultiRegionConfiguration']
um = us.describe_key(KeyId=key)['KeyMetadata']['MultiRegionConfiguration']
assert em['MultiRegionKeyType'] == 'PRIMARY' and um['MultiRegionKeyType'] == 'REPLICA'
assert em['PrimaryKey']['Region'] == um['PrimaryKey']['Region'] == 'eu-west-1'
assert [r['Region'] for r in em['ReplicaKeys']] == ['us-east-1']
assert us.get_key_rotation_status(KeyId=key)['RotationPeriodInDays'] == 120
assert c(us.rotate_key_on_demand, KeyId=key) == 'UnsupportedOperationException'
eu.rotate_key_on_demand(KeyId=key)
v3 = us.encrypt(KeyId=key, Plaintext=b'v3')['CiphertextBlob']
assert eu.decrypt(CiphertextBlob=v3)['Plaintext'] == b'v3'
eu.replicate_key(KeyId=key, ReplicaRegion='ap-south-1')
assert ap.decrypt(CiphertextBlob=before)['Plaintext'] == b'v1'
us.disable_key(KeyId=key)
assert c(eu.update_primary_region, KeyId=key, PrimaryRegion='us-east-1') == 'DisabledException'
us.enable_key(KeyId=key)

# Deletion: the primary (now in eu-west-1) waits for its replicas.
r = eu.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
assert r['KeyState'] == 'PendingReplicaDeletion' and 'DeletionDate' not in r, r
assert r['PendingWindowInDays'] == 7
m = eu.describe_key(KeyId=key)['KeyMetadata']
assert m['KeyState'] == 'PendingReplicaDeletion' and 'DeletionDate' not in m, m
assert c(eu.decrypt, CiphertextBlob=before) == 'KMSInvalidStateException'
assert c(eu.replicate_key, KeyId=key, ReplicaRegion='sa-east-1') == 'KMSInvalidStateException'
assert c(eu.schedule_key_deletion, KeyId=key) == 'KMSInvalidStateException'
# The replicas still work, and are deleted as any key.
assert us.decrypt(CiphertextBlob=before)['Plaintext'] == b'v1'
r = us.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
assert r['KeyState'] == 'PendingDeletion' and 'DeletionDate' in r, r
eu.cancel_key_deletion(KeyId=key)
assert eu.describe_key(KeyId=key)['KeyMetadata']['KeyState'] == 'Disabled'
"#,
    );
}

/// `kmsfs kms` on the embedded store: the AWS CLI's flags and output.
#[test]
fn cli_creates_and_replicates() {
    let s = server();
    let created = s.kmsfs_json(&[
        "kms",
        "create-key",
        "--multi-region",
        "--region",
        "us-east-1",
    ]);
    let meta = &created["KeyMetadata"];
    let key = meta["KeyId"].as_str().unwrap();
    assert!(key.starts_with("mrk-"), "{created}");
    assert_eq!(meta["MultiRegion"], true);
    assert_eq!(
        meta["MultiRegionConfiguration"]["MultiRegionKeyType"],
        "PRIMARY"
    );
    let replica = s.kmsfs_json(&[
        "kms",
        "replicate-key",
        "--key-id",
        key,
        "--replica-region",
        "eu-west-1",
        "--description",
        "from the CLI",
        "--tags",
        "TagKey=team,TagValue=storage",
        "--region",
        "us-east-1",
    ]);
    let r = &replica["ReplicaKeyMetadata"];
    assert_eq!(r["KeyId"], key);
    assert_eq!(
        r["Arn"],
        format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{key}")
    );
    assert_eq!(r["Description"], "from the CLI");
    assert_eq!(
        replica["ReplicaTags"],
        serde_json::json!([{"TagKey": "team", "TagValue": "storage"}])
    );
    assert!(replica["ReplicaPolicy"].as_str().unwrap().contains("kms:*"));
    let described = s.kmsfs_json(&[
        "kms",
        "describe-key",
        "--key-id",
        key,
        "--region",
        "eu-west-1",
    ]);
    let config = &described["KeyMetadata"]["MultiRegionConfiguration"];
    assert_eq!(config["MultiRegionKeyType"], "REPLICA");
    assert_eq!(config["PrimaryKey"]["Region"], "us-east-1");
    // update-primary-region prints nothing, as the AWS CLI.
    let out = s.kmsfs(&[
        "kms",
        "update-primary-region",
        "--key-id",
        key,
        "--primary-region",
        "eu-west-1",
        "--region",
        "us-east-1",
    ]);
    assert!(out.status.success(), "{}", common::kms_server::stderr(&out));
    assert!(out.stdout.is_empty());
    let described = s.kmsfs_json(&[
        "kms",
        "describe-key",
        "--key-id",
        key,
        "--region",
        "eu-west-1",
    ]);
    assert_eq!(
        described["KeyMetadata"]["MultiRegionConfiguration"]["MultiRegionKeyType"],
        "PRIMARY"
    );
    // A refusal prints AWS's error code.
    let out = s.kmsfs(&[
        "kms",
        "replicate-key",
        "--key-id",
        key,
        "--replica-region",
        "us-east-1",
        "--region",
        "eu-west-1",
    ]);
    assert!(!out.status.success());
    let err = common::kms_server::stderr(&out);
    assert!(err.contains("AlreadyExistsException"), "{err}");
}
