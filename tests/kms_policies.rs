//! AWS's policy language end to end, through boto3 against `kmsfs kms
//! serve`, starting with the seed's first lab step: an IAM group and users,
//! a KMS access policy attached to the group, and a key whose policy is
//! AWS's default (the account principal hands the decision to IAM).
//! `root` (Unix root: the account's root user) administers; `bin` is in
//! group KMSUsers; `daemon` is in no group.

mod common;

use common::kms_server::{KmsServer, stderr};

/// `kmsfs iam ARGS`, which must succeed.
fn iam(s: &KmsServer, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["iam"];
    all.extend_from_slice(args);
    s.kmsfs_json(&all)
}

const GROUP_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
  {"Sid": "UseKeys", "Effect": "Allow",
   "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
   "Resource": "arn:aws:kms:local:000000000000:key/*"}]}"#;

#[test]
fn identity_policies_account_principal_conditions_and_not_action() {
    let s = KmsServer::start();
    let root = s.user_with_key("root");
    let bin = s.user_with_key("bin");
    let daemon = s.user_with_key("daemon");
    iam(&s, &["create-group", "--group-name", "KMSUsers"]);
    iam(
        &s,
        &[
            "add-user-to-group",
            "--group-name",
            "KMSUsers",
            "--user-name",
            "bin",
        ],
    );
    iam(
        &s,
        &[
            "put-group-policy",
            "--group-name",
            "KMSUsers",
            "--policy-name",
            "use-keys",
            "--policy-document",
            GROUP_POLICY,
        ],
    );
    let got = iam(
        &s,
        &[
            "get-group-policy",
            "--group-name",
            "KMSUsers",
            "--policy-name",
            "use-keys",
        ],
    );
    assert_eq!(got["PolicyDocument"]["Statement"][0]["Sid"], "UseKeys");
    assert_eq!(
        iam(&s, &["list-group-policies", "--group-name", "KMSUsers"])["PolicyNames"],
        serde_json::json!(["use-keys"])
    );
    // A Deny for bin outside its department.
    iam(
        &s,
        &[
            "put-user-policy",
            "--user-name",
            "bin",
            "--policy-name",
            "only-it",
            "--policy-document",
            r#"{"Statement": {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
                "Condition": {"StringNotEquals": {"kms:EncryptionContext:dept": "it"}}}}"#,
        ],
    );
    // Identity policies have no Principal; kmsfs evaluates kms: actions only.
    for bad in [
        r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}"#,
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#,
        r#"{"Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
            "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}"#,
    ] {
        let out = s.kmsfs(&[
            "iam",
            "put-user-policy",
            "--user-name",
            "daemon",
            "--policy-name",
            "bad",
            "--policy-document",
            bad,
        ]);
        assert!(!out.status.success(), "{bad}");
        assert!(
            stderr(&out).contains("MalformedPolicyDocument"),
            "{}",
            stderr(&out)
        );
    }
    // A user with policies is not deleted behind them (IAM's DeleteConflict).
    let out = s.kmsfs(&["iam", "delete-group", "--group-name", "KMSUsers"]);
    assert!(!out.status.success());

    s.boto3_as(
        &[("root", &root), ("bin", &bin), ("daemon", &daemon)],
        r#"
ACCOUNT_ROOT = {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
                "Action": "kms:*", "Resource": "*"}
def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Id": "key-default-1", "Statement": list(statements)})

# AWS's default key policy: the account's identity policies decide.
k1 = root.create_key(Policy=policy(ACCOUNT_ROOT))['KeyMetadata']['KeyId']
it = {'dept': 'it'}
blob = bin.encrypt(KeyId=k1, Plaintext=b'p', EncryptionContext=it)['CiphertextBlob']
eq(bin.decrypt(CiphertextBlob=blob, EncryptionContext=it)['Plaintext'], b'p')
bin.generate_data_key(KeyId=k1, KeySpec='AES_256', EncryptionContext=it)
eq(bin.describe_key(KeyId=k1)['KeyMetadata']['KeyId'], k1)
eq(err(bin.disable_key, KeyId=k1), 'AccessDeniedException')
eq(err(daemon.encrypt, KeyId=k1, Plaintext=b'p'), 'AccessDeniedException')
# bin's own explicit Deny: no Decrypt outside dept=it, though the group allows it.
hr = bin.encrypt(KeyId=k1, Plaintext=b'p', EncryptionContext={'dept': 'hr'})['CiphertextBlob']
eq(err(bin.decrypt, CiphertextBlob=hr, EncryptionContext={'dept': 'hr'}), 'AccessDeniedException')
eq(root.decrypt(CiphertextBlob=hr, EncryptionContext={'dept': 'hr'})['Plaintext'], b'p')

# A key policy naming neither the account nor bin keeps bin out, whatever its
# identity policies say; one naming a user ARN lets it in directly, under
# the statement's condition.
k2 = root.create_key(Policy=policy(
    {"Effect": "Allow", "Principal": {"User": ["root"]}, "Action": "kms:*", "Resource": "*"},
    {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/daemon"]},
     "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*",
     "Condition": {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app"]},
                   "StringEquals": {"kms:CallerAccount": "000000000000"}}}))['KeyMetadata']['KeyId']
eq(err(bin.encrypt, KeyId=k2, Plaintext=b'p', EncryptionContext=it), 'AccessDeniedException')
daemon.encrypt(KeyId=k2, Plaintext=b'p', EncryptionContext={'app': 'x'})
eq(err(daemon.encrypt, KeyId=k2, Plaintext=b'p', EncryptionContext={'app': 'x', 'dept': 'it'}), 'AccessDeniedException')
# ForAllValues over no context at all holds (AWS's documented pitfall).
daemon.encrypt(KeyId=k2, Plaintext=b'p')
eq(err(daemon.describe_key, KeyId=k2), 'AccessDeniedException')

# NotAction in a Deny: bin may only encrypt and describe k3.
k3 = root.create_key(Policy=policy(ACCOUNT_ROOT,
    {"Effect": "Deny", "Principal": {"AWS": "*"}, "NotAction": ["kms:Encrypt", "kms:Describe*"],
     "Resource": "*", "Condition": {"StringEquals": {"aws:username": "bin"}}}))['KeyMetadata']['KeyId']
b3 = bin.encrypt(KeyId=k3, Plaintext=b'p', EncryptionContext=it)['CiphertextBlob']
eq(err(bin.decrypt, CiphertextBlob=b3, EncryptionContext=it), 'AccessDeniedException')
eq(root.decrypt(CiphertextBlob=b3, EncryptionContext=it)['Plaintext'], b'p')

# What AWS refuses in a key policy, kmsfs refuses too.
for bad in [
    {"Effect": "Allow", "Principal": {"Federated": "cognito-identity.amazonaws.com"}, "Action": "kms:*", "Resource": "*"},
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "NotAction": "kms:Decrypt", "Resource": "*"},
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*",
     "Condition": {"StringFancy": {"aws:username": "x"}}},
    {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
]:
    eq(err(root.put_key_policy, KeyId=k1, PolicyName='default', Policy=policy(ACCOUNT_ROOT, bad)), 'MalformedPolicyDocumentException')
# The lockout check counts the author's identity: a policy only daemon may change is refused.
eq(err(root.put_key_policy, KeyId=k1, PolicyName='default', Policy=policy(
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/daemon"}, "Action": "kms:*", "Resource": "*"})),
   'MalformedPolicyDocumentException')
# Service principals are stored and match no caller.
root.put_key_policy(KeyId=k1, PolicyName='default', Policy=policy(ACCOUNT_ROOT,
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "kms:Decrypt", "Resource": "*"}))
eq(err(daemon.decrypt, CiphertextBlob=blob, EncryptionContext=it), 'AccessDeniedException')
"#,
    );

    // The group policy scoped to one key: the others are out of bin's reach.
    iam(
        &s,
        &[
            "delete-user-policy",
            "--user-name",
            "bin",
            "--policy-name",
            "only-it",
        ],
    );
    assert_eq!(
        iam(&s, &["list-user-policies", "--user-name", "bin"])["PolicyNames"],
        serde_json::json!([])
    );
    iam(
        &s,
        &[
            "delete-group-policy",
            "--group-name",
            "KMSUsers",
            "--policy-name",
            "use-keys",
        ],
    );
    s.boto3_as(
        &[("root", &root), ("bin", &bin)],
        r#"
for k in root.list_keys()['Keys']:
    eq(err(bin.encrypt, KeyId=k['KeyId'], Plaintext=b'p'), 'AccessDeniedException')
# Listing the account's keys is itself an account-level permission.
eq(err(bin.list_keys), 'AccessDeniedException')
"#,
    );
}
