//! Grants end to end: boto3 and the AWS CLI, configured the ordinary way
//! (region, access keys made by `kmsfs iam`), against `kmsfs kms serve`.
//! Three IAM users (each a Unix user of that name): `root` creates and
//! administers the key, `bin` is a grantee, `daemon` a retiring principal.

mod common;

use common::kms_server::{AccessKey, KmsServer};

const ACCOUNT: &str = "000000000000";

fn arn(user: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{user}")
}

/// Runs `body` with boto3 clients `root`, `bin` and `daemon` (region
/// `local`), the helpers of [`KmsServer::boto3`] (`err`, `eq`), and the
/// ARNs `BIN` and `DAEMON`.
fn boto3(s: &KmsServer, users: &[(&str, &AccessKey)], body: &str) {
    let arns = format!("BIN = '{}'\nDAEMON = '{}'\n", arn("bin"), arn("daemon"));
    s.boto3_as(users, &format!("{arns}{body}"));
}

#[test]
fn grants_delegate_use_under_constraints_and_can_be_retired_and_revoked() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    let daemon = s.user_with_key("daemon");
    boto3(
        &s,
        &[("root", &root), ("bin", &bin), ("daemon", &daemon)],
        r#"
key = root.create_key(Description='granted')['KeyMetadata']
kid, karn = key['KeyId'], key['Arn']
ctx = {'dept': 'it', 'x': 'y'}
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx), 'AccessDeniedException')

# Validation before anything else.
eq(err(root.create_grant, KeyId=kid, GranteePrincipal='bin', Operations=['Encrypt']), 'InvalidArnException')
eq(err(root.create_grant, KeyId=kid, GranteePrincipal=BIN, Operations=['Frobnicate']), 'ValidationException')
eq(err(root.create_grant, KeyId=kid, GranteePrincipal=BIN, Operations=['DescribeKey'],
       Constraints={'EncryptionContextSubset': {'dept': 'it'}}), 'ValidationException')
root.create_alias(AliasName='alias/granted', TargetKeyId=kid)
eq(err(root.create_grant, KeyId='alias/granted', GranteePrincipal=BIN, Operations=['Encrypt']), 'NotFoundException')
eq(err(root.create_grant, KeyId=kid, GranteePrincipal=BIN, Operations=['Encrypt'], DryRun=True), 'DryRunOperationException')
eq(root.list_grants(KeyId=kid)['Grants'], [])

# A constrained grant, named: a repeat answers the same grant.
g = root.create_grant(KeyId=kid, GranteePrincipal=BIN, RetiringPrincipal=DAEMON,
                      Operations=['Encrypt', 'Decrypt'], Name='g1',
                      Constraints={'EncryptionContextSubset': {'dept': 'it'}})
assert len(g['GrantId']) == 64 and g['GrantToken']
again = root.create_grant(KeyId=kid, GranteePrincipal=BIN, RetiringPrincipal=DAEMON,
                          Operations=['Decrypt', 'Encrypt'], Name='g1',
                          Constraints={'EncryptionContextSubset': {'dept': 'it'}})
eq(again['GrantId'], g['GrantId'])

# The grantee uses it at once, with or without the token, only within it.
blob = bin.encrypt(KeyId=kid, Plaintext=b'p', EncryptionContext=ctx, GrantTokens=[g['GrantToken']])['CiphertextBlob']
eq(bin.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)['Plaintext'], b'p')
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p'), 'AccessDeniedException')
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext={'dept': 'hr'}), 'AccessDeniedException')
eq(err(bin.describe_key, KeyId=kid), 'AccessDeniedException')
eq(err(bin.generate_data_key, KeyId=kid, KeySpec='AES_256', EncryptionContext=ctx), 'AccessDeniedException')
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx, GrantTokens=['forged']), 'InvalidGrantTokenException')
eq(err(daemon.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx), 'AccessDeniedException')

# What the listings show, and to whom.
gl = root.list_grants(KeyId=kid)
eq(len(gl['Grants']), 1)
e = gl['Grants'][0]
eq((e['KeyId'], e['GrantId'], e['Name'], e['GranteePrincipal'], e['RetiringPrincipal'], e['IssuingAccount']),
   (karn, g['GrantId'], 'g1', BIN, DAEMON, 'arn:aws:iam::000000000000:root'))
eq(e['Operations'], ['Decrypt', 'Encrypt'])
eq(e['Constraints'], {'EncryptionContextSubset': {'dept': 'it'}})
assert e['CreationDate']
eq(len(root.list_grants(KeyId=karn, GranteePrincipal=BIN)['Grants']), 1)
eq(root.list_grants(KeyId=kid, GranteePrincipal=DAEMON)['Grants'], [])
eq(err(root.list_grants, KeyId=kid, GrantId='nope'), 'InvalidGrantIdException')
eq(err(bin.list_grants, KeyId=kid), 'AccessDeniedException')
eq([x['GrantId'] for x in daemon.list_retirable_grants(RetiringPrincipal=DAEMON)['Grants']], [g['GrantId']])
eq(bin.list_retirable_grants(RetiringPrincipal=DAEMON)['Grants'], [])
eq(len(root.list_retirable_grants(RetiringPrincipal=DAEMON)['Grants']), 1)

# A CreateGrant grant passes on no more than it holds.
g2 = root.create_grant(KeyId=kid, GranteePrincipal=BIN, Operations=['CreateGrant', 'Encrypt'],
                       Constraints={'EncryptionContextSubset': {'dept': 'it'}})
g3 = bin.create_grant(KeyId=kid, GranteePrincipal=DAEMON, Operations=['Encrypt'],
                      Constraints={'EncryptionContextSubset': {'dept': 'it', 'team': 'a'}})
daemon.encrypt(KeyId=kid, Plaintext=b'p', EncryptionContext={'dept': 'it', 'team': 'a'})
eq(err(daemon.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx), 'AccessDeniedException')
eq(err(bin.create_grant, KeyId=kid, GranteePrincipal=DAEMON, Operations=['Decrypt'],
       Constraints={'EncryptionContextSubset': {'dept': 'it'}}), 'AccessDeniedException')
eq(err(bin.create_grant, KeyId=kid, GranteePrincipal=DAEMON, Operations=['Encrypt']), 'AccessDeniedException')

# An explicit Deny of the key policy beats every grant.
policy = root.get_key_policy(KeyId=kid, PolicyName='default')['Policy']
import json
deny = json.loads(policy)
deny['Statement'].append({'Effect': 'Deny', 'Principal': {'User': ['bin']}, 'Action': 'kms:Encrypt', 'Resource': '*'})
root.put_key_policy(KeyId=kid, PolicyName='default', Policy=json.dumps(deny))
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx), 'AccessDeniedException')
eq(bin.decrypt(CiphertextBlob=blob, EncryptionContext=ctx)['Plaintext'], b'p')
root.put_key_policy(KeyId=kid, PolicyName='default', Policy=policy)
bin.encrypt(KeyId=kid, Plaintext=b'p', EncryptionContext=ctx)

# Retiring: not by the grantee (its grant lacks RetireGrant), by the
# retiring principal through the token; then the grant is gone.
eq(err(bin.retire_grant, GrantToken=g['GrantToken']), 'AccessDeniedException')
eq(err(daemon.retire_grant, GrantToken=g['GrantToken'], DryRun=True), 'DryRunOperationException')
daemon.retire_grant(GrantToken=g['GrantToken'])
eq(err(bin.decrypt, CiphertextBlob=blob, EncryptionContext=ctx), 'AccessDeniedException')
# Whether a grant that is gone existed is for the key's administrators only.
eq(err(daemon.retire_grant, GrantToken=g['GrantToken']), 'AccessDeniedException')
eq(err(root.retire_grant, GrantToken=g['GrantToken']), 'NotFoundException')
eq(err(daemon.retire_grant, GrantId=g2['GrantId']), 'ValidationException')
# The grantee of a grant allowing RetireGrant retires it by key and id.
g4 = root.create_grant(KeyId=kid, GranteePrincipal=BIN, Operations=['RetireGrant', 'DescribeKey'])
eq(bin.describe_key(KeyId=kid)['KeyMetadata']['KeyId'], kid)
bin.retire_grant(KeyId=kid, GrantId=g4['GrantId'])
eq(err(bin.describe_key, KeyId=kid), 'AccessDeniedException')

# Revoking is for who the key policy allows.
eq(err(bin.revoke_grant, KeyId=kid, GrantId=g2['GrantId']), 'AccessDeniedException')
eq(err(bin.revoke_grant, KeyId=kid, GrantId='f' * 64), 'AccessDeniedException')
root.revoke_grant(KeyId=kid, GrantId=g2['GrantId'])
eq(err(bin.encrypt, KeyId=kid, Plaintext=b'p', EncryptionContext=ctx), 'AccessDeniedException')
eq(err(root.revoke_grant, KeyId=kid, GrantId=g2['GrantId']), 'NotFoundException')
eq(err(root.revoke_grant, KeyId=kid, GrantId='x'), 'InvalidGrantIdException')
eq([x['GrantId'] for x in root.list_grants(KeyId=kid)['Grants']], [g3['GrantId']])

# Paging through a paginator; a disabled key takes no new grants.
for i in range(5):
    root.create_grant(KeyId=kid, GranteePrincipal=DAEMON, Operations=['DescribeKey'], Name=f'n{i}')
pages = list(root.get_paginator('list_grants').paginate(KeyId=kid, PaginationConfig={'PageSize': 2}))
assert len(pages) >= 3, pages
eq(len([x for p in pages for x in p['Grants']]), 6)
eq(err(root.list_grants, KeyId=kid, Marker='bogus'), 'InvalidMarkerException')
root.disable_key(KeyId=kid)
eq(err(root.create_grant, KeyId=kid, GranteePrincipal=BIN, Operations=['Encrypt']), 'DisabledException')
root.revoke_grant(KeyId=kid, GrantId=g3['GrantId'])

# A multi-Region key's grants are its regional key's; its token retires it.
mrk = root.create_key(MultiRegion=True)['KeyMetadata']['KeyId']
assert mrk.startswith('mrk-'), mrk
gm = root.create_grant(KeyId=mrk, GranteePrincipal=DAEMON, RetiringPrincipal=DAEMON, Operations=['DescribeKey'])
eq(daemon.describe_key(KeyId=mrk)['KeyMetadata']['KeyId'], mrk)
daemon.retire_grant(GrantToken=gm['GrantToken'])
eq(err(daemon.describe_key, KeyId=mrk), 'AccessDeniedException')

# Keys are regional: so are their grants.
east = boto3.client('kms', endpoint_url=root.meta.endpoint_url, region_name='us-east-1',
                    aws_access_key_id=root._request_signer._credentials.access_key,
                    aws_secret_access_key=root._request_signer._credentials.secret_key)
eq(err(east.list_grants, KeyId=kid), 'NotFoundException')
"#,
    );
}

/// The AWS CLI and `kmsfs kms` speak the same grant commands.
#[test]
fn grants_through_the_aws_cli_and_kmsfs_kms() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let key = s.aws_json(&root, &["kms", "create-key"])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let bin = arn("bin");
    let g = s.aws_json(
        &root,
        &[
            "kms",
            "create-grant",
            "--key-id",
            &key,
            "--grantee-principal",
            &bin,
            "--operations",
            "Encrypt",
            "Decrypt",
            "--constraints",
            "EncryptionContextSubset={dept=it}",
        ],
    );
    let grant_id = g["GrantId"].as_str().unwrap().to_string();
    let listed = s.aws_json(&root, &["kms", "list-grants", "--key-id", &key]);
    assert_eq!(listed["Grants"][0]["GrantId"], grant_id.as_str());
    assert_eq!(
        listed["Grants"][0]["Constraints"]["EncryptionContextSubset"]["dept"],
        "it"
    );
    let e = s.aws_err(
        &root,
        &["kms", "revoke-grant", "--key-id", &key, "--grant-id", "x"],
    );
    assert!(e.contains("InvalidGrantIdException"), "{e}");

    // The same store through `kmsfs kms` (embedded, as root).
    let mine = s.kmsfs_json(&[
        "kms",
        "create-grant",
        "--key-id",
        &key,
        "--grantee-principal",
        &bin,
        "--operations",
        "Encrypt",
        "--constraints",
        r#"{"EncryptionContextEquals": {"a": "b"}}"#,
        "--name",
        "cli",
    ]);
    let listed = s.kmsfs_json(&["kms", "list-grants", "--key-id", &key, "--limit", "1"]);
    assert_eq!(listed["Grants"].as_array().unwrap().len(), 1);
    assert_eq!(listed["Truncated"], true);
    let marker = listed["NextMarker"].as_str().unwrap();
    let rest = s.kmsfs_json(&["kms", "list-grants", "--key-id", &key, "--marker", marker]);
    assert_eq!(rest["Grants"].as_array().unwrap().len(), 1);
    s.kmsfs_json(&[
        "kms",
        "revoke-grant",
        "--key-id",
        &key,
        "--grant-id",
        mine["GrantId"].as_str().unwrap(),
    ]);
    s.aws_ok(
        &root,
        &[
            "kms",
            "revoke-grant",
            "--key-id",
            &key,
            "--grant-id",
            &grant_id,
        ],
    );
    let none = s.kmsfs_json(&["kms", "list-grants", "--key-id", &key]);
    assert_eq!(none["Grants"], serde_json::json!([]));
    let bad = s.kmsfs(&[
        "kms",
        "create-grant",
        "--key-id",
        &key,
        "--grantee-principal",
        "bin",
        "--operations",
        "Encrypt",
    ]);
    assert!(!bad.status.success());
    assert!(
        common::kms_server::stderr(&bad).contains("InvalidArnException"),
        "{}",
        common::kms_server::stderr(&bad)
    );
}
