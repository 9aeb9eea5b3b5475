//! Asymmetric and HMAC keys end to end: boto3 against `kmsfs kms serve`
//! (a client configured the ordinary way: region, access keys made with
//! `kmsfs iam`), and Python's `cryptography` as the independent other side
//! of every algorithm — it verifies kmsfs's signatures with the public key
//! from GetPublicKey, encrypts with RSAES-OAEP for kmsfs to decrypt, loads
//! the key pairs of GenerateDataKeyPair and computes its own ECDH secret.
//! Every refusal is checked by its AWS error code. Plus `kmsfs kms sign` /
//! `verify` on the embedded store.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_kmsfs");

struct Server {
    dir: TempDir,
    store: PathBuf,
    child: Child,
    port: u16,
    key_id: String,
    secret: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Server {
    /// `kmsfs kms serve` on a random loopback port, and an access key of
    /// the IAM user for root (this test's uid, the keys' creator).
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("keystore");
        let mut child = Command::new(BIN)
            .arg("--keystore")
            .arg(&store)
            .args(["kms", "serve", "--listen", "127.0.0.1:0"])
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .env("AWS_REGION", "local")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("server printed nothing").unwrap();
        let port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        std::thread::spawn(move || for _ in lines {});
        let mut s = Server {
            dir,
            store,
            child,
            port,
            key_id: String::new(),
            secret: String::new(),
        };
        s.kmsfs_json(&["iam", "create-user", "--user-name", "root"]);
        let k = s.kmsfs_json(&["iam", "create-access-key", "--user-name", "root"]);
        s.key_id = k["AccessKey"]["AccessKeyId"].as_str().unwrap().into();
        s.secret = k["AccessKey"]["SecretAccessKey"].as_str().unwrap().into();
        s
    }

    fn kmsfs_json(&self, args: &[&str]) -> Value {
        let out = Command::new(BIN)
            .arg("--keystore")
            .arg(&self.store)
            .args(args)
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .env("AWS_REGION", "local")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "kmsfs {args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `body` after [`PRELUDE`] (a boto3 client `kms`, the helpers
    /// `code`, `flip`, `create`) and returns what it printed.
    fn boto3(&self, body: &str) -> String {
        let script = format!("{PRELUDE}\n{body}\nprint('done')\n");
        let out = Command::new("python3")
            .args(["-c", &script])
            .current_dir(self.dir.path())
            .env("KMS_URL", format!("http://127.0.0.1:{}", self.port))
            .env("KMS_ACCESS_KEY", &self.key_id)
            .env("KMS_SECRET_KEY", &self.secret)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("python3 with boto3 and cryptography (pip install boto3 cryptography)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "boto3 script failed:\n{}\n{stdout}",
            stderr(&out)
        );
        assert!(stdout.trim_end().ends_with("done"), "{stdout}");
        stdout
    }
}

const PRELUDE: &str = r#"
import os, json, hashlib, hmac as pyhmac
import boto3, botocore
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.exceptions import InvalidSignature

kms = boto3.client('kms', endpoint_url=os.environ['KMS_URL'], region_name='local',
                   aws_access_key_id=os.environ['KMS_ACCESS_KEY'],
                   aws_secret_access_key=os.environ['KMS_SECRET_KEY'],
                   config=Config(retries={'max_attempts': 1}))

def code(f, **kw):
    """The AWS error code of a call that must fail."""
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response['Error']['Code']
    raise AssertionError('%s(%r) succeeded' % (f.__name__, kw))

def flip(b, i=0):
    b = bytearray(b); b[i] ^= 1; return bytes(b)

def create(spec, usage=None):
    kw = {'KeySpec': spec}
    if usage:
        kw['KeyUsage'] = usage
    return kms.create_key(**kw)['KeyMetadata']

HASHES = {'SHA_256': hashes.SHA256(), 'SHA_384': hashes.SHA384(), 'SHA_512': hashes.SHA512()}
def hash_of(alg):
    return HASHES[alg[-7:]]
def digest(alg, m):
    return hashlib.new(hash_of(alg).name, m).digest()
"#;

#[test]
fn signing_keys_interoperate_with_python_cryptography() {
    let s = Server::start();
    s.boto3(
        r#"
RSA_ALGS = ['RSASSA_PSS_SHA_256', 'RSASSA_PSS_SHA_384', 'RSASSA_PSS_SHA_512',
            'RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PKCS1_V1_5_SHA_384', 'RSASSA_PKCS1_V1_5_SHA_512']
SPECS = {'RSA_2048': RSA_ALGS, 'RSA_3072': RSA_ALGS, 'RSA_4096': RSA_ALGS,
         'ECC_NIST_P256': ['ECDSA_SHA_256'], 'ECC_NIST_P384': ['ECDSA_SHA_384'],
         'ECC_NIST_P521': ['ECDSA_SHA_512'], 'ECC_SECG_P256K1': ['ECDSA_SHA_256']}
CURVES = {'ECC_NIST_P256': 'secp256r1', 'ECC_NIST_P384': 'secp384r1',
          'ECC_NIST_P521': 'secp521r1', 'ECC_SECG_P256K1': 'secp256k1'}
message = b'the message kmsfs signs'

def python_verify(pub, alg, sig, data, prehashed=False):
    h = hash_of(alg)
    algo = utils.Prehashed(h) if prehashed else h
    if alg.startswith('ECDSA'):
        pub.verify(sig, data, ec.ECDSA(algo))
    elif alg.startswith('RSASSA_PSS'):
        # AWS (and kmsfs) use a salt as long as the digest.
        pub.verify(sig, data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), algo)
    else:
        pub.verify(sig, data, padding.PKCS1v15(), algo)

for spec, algs in SPECS.items():
    meta = create(spec, 'SIGN_VERIFY')
    key = meta['KeyId']
    assert meta['KeySpec'] == spec and meta['CustomerMasterKeySpec'] == spec, meta
    assert meta['KeyUsage'] == 'SIGN_VERIFY', meta
    assert meta['SigningAlgorithms'] == algs, meta
    assert 'EncryptionAlgorithms' not in meta and 'MacAlgorithms' not in meta, meta
    assert kms.describe_key(KeyId=key)['KeyMetadata']['SigningAlgorithms'] == algs

    pk = kms.get_public_key(KeyId=key)
    assert pk['KeyId'] == meta['Arn'] and pk['KeySpec'] == spec and pk['KeyUsage'] == 'SIGN_VERIFY'
    assert pk['SigningAlgorithms'] == algs and 'EncryptionAlgorithms' not in pk, pk
    pub = serialization.load_der_public_key(pk['PublicKey'])
    if spec.startswith('RSA'):
        assert isinstance(pub, rsa.RSAPublicKey) and pub.key_size == int(spec[4:]), spec
    else:
        assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == CURVES[spec], spec

    for alg in algs:
        # RAW: kmsfs hashes; Python verifies the message.
        r = kms.sign(KeyId=key, Message=message, SigningAlgorithm=alg)
        assert r['KeyId'] == meta['Arn'] and r['SigningAlgorithm'] == alg, r
        sig = r['Signature']
        python_verify(pub, alg, sig, message)
        v = kms.verify(KeyId=key, Message=message, Signature=sig, SigningAlgorithm=alg)
        assert v['SignatureValid'] is True and v['SigningAlgorithm'] == alg, v
        # DIGEST: the caller hashes; the signature is the same kind.
        d = digest(alg, message)
        sig2 = kms.sign(KeyId=key, Message=d, MessageType='DIGEST', SigningAlgorithm=alg)['Signature']
        python_verify(pub, alg, sig2, d, prehashed=True)
        python_verify(pub, alg, sig2, message)
        assert kms.verify(KeyId=key, Message=message, Signature=sig2, SigningAlgorithm=alg)['SignatureValid']
        assert kms.verify(KeyId=key, Message=d, MessageType='DIGEST', Signature=sig,
                          SigningAlgorithm=alg)['SignatureValid']
        # One bit changed in the signature: both sides refuse it.
        bad = flip(sig, len(sig) // 2)
        try:
            python_verify(pub, alg, bad, message)
            raise AssertionError('python accepted a changed signature')
        except (InvalidSignature, ValueError):
            pass
        assert code(kms.verify, KeyId=key, Message=message, Signature=bad,
                    SigningAlgorithm=alg) == 'KMSInvalidSignatureException'
        assert code(kms.verify, KeyId=key, Message=flip(message), Signature=sig,
                    SigningAlgorithm=alg) == 'KMSInvalidSignatureException'
        # A digest of the wrong length.
        assert code(kms.sign, KeyId=key, Message=d[:-1], MessageType='DIGEST',
                    SigningAlgorithm=alg) == 'ValidationException'
        # DryRun: checked, not signed.
        assert code(kms.sign, KeyId=key, Message=message, SigningAlgorithm=alg,
                    DryRun=True) == 'DryRunOperationException'
        assert code(kms.verify, KeyId=key, Message=message, Signature=sig, SigningAlgorithm=alg,
                    DryRun=True) == 'DryRunOperationException'

    # An algorithm of another spec, and operations of other usages.
    other = 'ECDSA_SHA_256' if spec.startswith('RSA') else 'RSASSA_PSS_SHA_256'
    assert code(kms.sign, KeyId=key, Message=message, SigningAlgorithm=other) == 'InvalidKeyUsageException'
    assert code(kms.encrypt, KeyId=key, Plaintext=b'x') == 'InvalidKeyUsageException'
    assert code(kms.generate_mac, KeyId=key, Message=b'x', MacAlgorithm='HMAC_SHA_256') == 'InvalidKeyUsageException'
    assert code(kms.generate_data_key, KeyId=key, KeySpec='AES_256') == 'InvalidKeyUsageException'
    # Asymmetric keys do not rotate.
    assert code(kms.enable_key_rotation, KeyId=key) == 'UnsupportedOperationException'
    assert code(kms.rotate_key_on_demand, KeyId=key) == 'UnsupportedOperationException'
    assert kms.get_key_rotation_status(KeyId=key)['KeyRotationEnabled'] is False

# A P-384 key refuses SHA-256 ECDSA; the 'ECDSA_SHA_384' digest must be 48 bytes.
p384 = create('ECC_NIST_P384', 'SIGN_VERIFY')['KeyId']
assert code(kms.sign, KeyId=p384, Message=b'm', SigningAlgorithm='ECDSA_SHA_256') == 'InvalidKeyUsageException'
assert code(kms.sign, KeyId=p384, Message=b'm', SigningAlgorithm='ED25519_SHA_512') == 'InvalidKeyUsageException'
assert code(kms.sign, KeyId=p384, Message=b'\0' * 32, MessageType='DIGEST',
            SigningAlgorithm='ECDSA_SHA_384') == 'ValidationException'
# A disabled key signs nothing.
kms.disable_key(KeyId=p384)
assert code(kms.sign, KeyId=p384, Message=b'm', SigningAlgorithm='ECDSA_SHA_384') == 'DisabledException'
assert code(kms.get_public_key, KeyId=p384) == 'DisabledException'
"#,
    );
}

#[test]
fn rsa_encryption_interoperates_with_python_cryptography() {
    let s = Server::start();
    s.boto3(
        r#"
LIMITS = {('RSA_2048', 'RSAES_OAEP_SHA_1'): 214, ('RSA_2048', 'RSAES_OAEP_SHA_256'): 190,
          ('RSA_3072', 'RSAES_OAEP_SHA_1'): 342, ('RSA_3072', 'RSAES_OAEP_SHA_256'): 318,
          ('RSA_4096', 'RSAES_OAEP_SHA_1'): 470, ('RSA_4096', 'RSAES_OAEP_SHA_256'): 446}
OAEP = {'RSAES_OAEP_SHA_1': hashes.SHA1(), 'RSAES_OAEP_SHA_256': hashes.SHA256()}
sym = kms.create_key()['KeyMetadata']['KeyId']
for spec in ['RSA_2048', 'RSA_3072', 'RSA_4096']:
    meta = create(spec, 'ENCRYPT_DECRYPT')
    key, arn = meta['KeyId'], meta['Arn']
    assert meta['EncryptionAlgorithms'] == ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'], meta
    assert 'SigningAlgorithms' not in meta, meta
    pk = kms.get_public_key(KeyId=key)
    assert pk['EncryptionAlgorithms'] == meta['EncryptionAlgorithms'] and 'SigningAlgorithms' not in pk
    pub = serialization.load_der_public_key(pk['PublicKey'])
    for alg, h in OAEP.items():
        pad = padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)
        secret = os.urandom(LIMITS[(spec, alg)])
        # Python encrypts to the public key; kmsfs decrypts.
        c = pub.encrypt(secret, pad)
        d = kms.decrypt(CiphertextBlob=c, KeyId=key, EncryptionAlgorithm=alg)
        assert d['Plaintext'] == secret and d['KeyId'] == arn and d['EncryptionAlgorithm'] == alg, d
        # kmsfs encrypts; kmsfs decrypts (the ciphertext is a bare RSA block).
        e = kms.encrypt(KeyId=key, Plaintext=b'short', EncryptionAlgorithm=alg)
        assert e['EncryptionAlgorithm'] == alg and len(e['CiphertextBlob']) == pub.key_size // 8, e
        assert kms.decrypt(CiphertextBlob=e['CiphertextBlob'], KeyId=key,
                           EncryptionAlgorithm=alg)['Plaintext'] == b'short'
        # The longest plaintext of the AWS table, and one byte more.
        kms.encrypt(KeyId=key, Plaintext=secret, EncryptionAlgorithm=alg)
        assert code(kms.encrypt, KeyId=key, Plaintext=secret + b'x', EncryptionAlgorithm=alg) == 'ValidationException'
        # No encryption context with asymmetric keys; Decrypt needs the key.
        assert code(kms.encrypt, KeyId=key, Plaintext=b'x', EncryptionAlgorithm=alg,
                    EncryptionContext={'a': 'b'}) == 'ValidationException'
        assert code(kms.decrypt, CiphertextBlob=c, EncryptionAlgorithm=alg) == 'ValidationException'
        assert code(kms.decrypt, CiphertextBlob=flip(c, 5), KeyId=key,
                    EncryptionAlgorithm=alg) == 'InvalidCiphertextException'
        # RSA algorithms on a symmetric key.
        assert code(kms.encrypt, KeyId=sym, Plaintext=b'x', EncryptionAlgorithm=alg) == 'InvalidKeyUsageException'
    other = 'RSAES_OAEP_SHA_256'
    c1 = pub.encrypt(b'abc', padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    assert code(kms.decrypt, CiphertextBlob=c1, KeyId=key, EncryptionAlgorithm=other) == 'InvalidCiphertextException'
    # SYMMETRIC_DEFAULT (the default) and signing are not for this key.
    assert code(kms.encrypt, KeyId=key, Plaintext=b'x') == 'InvalidKeyUsageException'
    assert code(kms.sign, KeyId=key, Message=b'x', SigningAlgorithm='RSASSA_PSS_SHA_256') == 'InvalidKeyUsageException'
    # ReEncrypt between a symmetric and an RSA key, both ways.
    blob = kms.encrypt(KeyId=sym, Plaintext=b'moving')['CiphertextBlob']
    r = kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key,
                       DestinationEncryptionAlgorithm='RSAES_OAEP_SHA_256')
    assert r['KeyId'] == arn and r['DestinationEncryptionAlgorithm'] == 'RSAES_OAEP_SHA_256', r
    assert r['SourceEncryptionAlgorithm'] == 'SYMMETRIC_DEFAULT', r
    back = kms.re_encrypt(CiphertextBlob=r['CiphertextBlob'], SourceKeyId=key,
                          SourceEncryptionAlgorithm='RSAES_OAEP_SHA_256', DestinationKeyId=sym)
    assert back['SourceKeyId'] == arn, back
    assert kms.decrypt(CiphertextBlob=back['CiphertextBlob'])['Plaintext'] == b'moving'
"#,
    );
}

#[test]
fn hmac_keys_generate_and_verify_macs() {
    let s = Server::start();
    s.boto3(
        r#"
for bits in [224, 256, 384, 512]:
    spec, alg = 'HMAC_%d' % bits, 'HMAC_SHA_%d' % bits
    meta = create(spec, 'GENERATE_VERIFY_MAC')
    key = meta['KeyId']
    assert meta['KeyUsage'] == 'GENERATE_VERIFY_MAC' and meta['KeySpec'] == spec, meta
    assert meta['MacAlgorithms'] == [alg], meta
    assert 'EncryptionAlgorithms' not in meta and 'SigningAlgorithms' not in meta, meta
    message = b'a message to authenticate'
    g = kms.generate_mac(KeyId=key, Message=message, MacAlgorithm=alg)
    mac = g['Mac']
    assert len(mac) == bits // 8 and g['MacAlgorithm'] == alg and g['KeyId'] == meta['Arn'], g
    # HMAC is deterministic.
    assert kms.generate_mac(KeyId=key, Message=message, MacAlgorithm=alg)['Mac'] == mac
    v = kms.verify_mac(KeyId=key, Message=message, Mac=mac, MacAlgorithm=alg)
    assert v['MacValid'] is True and v['MacAlgorithm'] == alg, v
    # One bit of the message or of the MAC changed.
    assert code(kms.verify_mac, KeyId=key, Message=flip(message), Mac=mac,
                MacAlgorithm=alg) == 'KMSInvalidMacException'
    assert code(kms.verify_mac, KeyId=key, Message=message, Mac=flip(mac, len(mac) - 1),
                MacAlgorithm=alg) == 'KMSInvalidMacException'
    # Another HMAC key's MAC of the same message.
    other = create(spec, 'GENERATE_VERIFY_MAC')['KeyId']
    assert code(kms.verify_mac, KeyId=other, Message=message, Mac=mac,
                MacAlgorithm=alg) == 'KMSInvalidMacException'
    wrong = 'HMAC_SHA_256' if bits != 256 else 'HMAC_SHA_512'
    assert code(kms.generate_mac, KeyId=key, Message=message, MacAlgorithm=wrong) == 'InvalidKeyUsageException'
    assert code(kms.generate_mac, KeyId=key, Message=message, MacAlgorithm=alg,
                DryRun=True) == 'DryRunOperationException'
    assert code(kms.verify_mac, KeyId=key, Message=message, Mac=mac, MacAlgorithm=alg,
                DryRun=True) == 'DryRunOperationException'
    assert code(kms.get_public_key, KeyId=key) == 'UnsupportedOperationException'
    assert code(kms.encrypt, KeyId=key, Plaintext=b'x') == 'InvalidKeyUsageException'
    assert code(kms.enable_key_rotation, KeyId=key) == 'UnsupportedOperationException'
# A symmetric key makes no MACs.
sym = kms.create_key()['KeyMetadata']['KeyId']
assert code(kms.generate_mac, KeyId=sym, Message=b'm', MacAlgorithm='HMAC_SHA_256') == 'InvalidKeyUsageException'
"#,
    );
}

#[test]
fn data_key_pairs_load_in_python_and_decrypt_to_their_private_key() {
    let s = Server::start();
    s.boto3(
        r#"
sym = kms.create_key()['KeyMetadata']
ctx = {'purpose': 'key pair test'}
CURVES = {'ECC_NIST_P256': 'secp256r1', 'ECC_NIST_P384': 'secp384r1',
          'ECC_NIST_P521': 'secp521r1', 'ECC_SECG_P256K1': 'secp256k1'}
def spki(k):
    return k.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
for spec in ['RSA_2048', 'RSA_3072', 'RSA_4096'] + list(CURVES):
    p = kms.generate_data_key_pair(KeyId=sym['KeyId'], KeyPairSpec=spec, EncryptionContext=ctx)
    assert p['KeyId'] == sym['Arn'] and p['KeyPairSpec'] == spec, p
    private = serialization.load_der_private_key(p['PrivateKeyPlaintext'], password=None)
    if spec.startswith('RSA'):
        assert private.key_size == int(spec[4:])
    else:
        assert private.curve.name == CURVES[spec]
    # The private key is the public key's other half.
    assert spki(private) == p['PublicKey'], spec
    # The ciphertext is an ordinary blob of the symmetric key, bound to the context.
    d = kms.decrypt(CiphertextBlob=p['PrivateKeyCiphertextBlob'], EncryptionContext=ctx)
    assert d['Plaintext'] == p['PrivateKeyPlaintext'] and d['KeyId'] == sym['Arn'], spec
    assert code(kms.decrypt, CiphertextBlob=p['PrivateKeyCiphertextBlob']) == 'InvalidCiphertextException'
    # Without plaintext: only the public key and the encrypted private key.
    q = kms.generate_data_key_pair_without_plaintext(KeyId=sym['KeyId'], KeyPairSpec=spec)
    assert 'PrivateKeyPlaintext' not in q and q['KeyPairSpec'] == spec, q
    priv2 = serialization.load_der_private_key(
        kms.decrypt(CiphertextBlob=q['PrivateKeyCiphertextBlob'])['Plaintext'], password=None)
    assert spki(priv2) == q['PublicKey'], spec
    assert q['PublicKey'] != p['PublicKey']
    assert code(kms.generate_data_key_pair, KeyId=sym['KeyId'], KeyPairSpec=spec,
                DryRun=True) == 'DryRunOperationException'
    assert code(kms.generate_data_key_pair_without_plaintext, KeyId=sym['KeyId'], KeyPairSpec=spec,
                DryRun=True) == 'DryRunOperationException'
# The wrapping key must be a symmetric encryption key.
signer = create('ECC_NIST_P256', 'SIGN_VERIFY')['KeyId']
assert code(kms.generate_data_key_pair, KeyId=signer, KeyPairSpec='ECC_NIST_P256') == 'InvalidKeyUsageException'
assert code(kms.generate_data_key_pair, KeyId=signer, KeyPairSpec='ECC_NIST_P256',
            DryRun=True) == 'InvalidKeyUsageException'
assert code(kms.generate_data_key_pair, KeyId=sym['KeyId'], KeyPairSpec='SM2') == 'UnsupportedOperationException'
assert code(kms.generate_data_key_pair, KeyId=sym['KeyId'], KeyPairSpec='ECC_NIST_EDWARDS25519') == 'UnsupportedOperationException'
kms.disable_key(KeyId=sym['KeyId'])
assert code(kms.generate_data_key_pair, KeyId=sym['KeyId'], KeyPairSpec='ECC_NIST_P256') == 'DisabledException'
"#,
    );
}

#[test]
fn derive_shared_secret_matches_python_ecdh() {
    let s = Server::start();
    s.boto3(
        r#"
CURVES = {'ECC_NIST_P256': ec.SECP256R1(), 'ECC_NIST_P384': ec.SECP384R1(), 'ECC_NIST_P521': ec.SECP521R1()}
def spki(k):
    return k.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)
for spec, curve in CURVES.items():
    meta = create(spec, 'KEY_AGREEMENT')
    key = meta['KeyId']
    assert meta['KeyAgreementAlgorithms'] == ['ECDH'] and meta['KeyUsage'] == 'KEY_AGREEMENT', meta
    assert 'SigningAlgorithms' not in meta and 'EncryptionAlgorithms' not in meta, meta
    pk = kms.get_public_key(KeyId=key)
    assert pk['KeyAgreementAlgorithms'] == ['ECDH'] and 'SigningAlgorithms' not in pk, pk
    kms_public = serialization.load_der_public_key(pk['PublicKey'])
    peer = ec.generate_private_key(curve)
    r = kms.derive_shared_secret(KeyId=key, KeyAgreementAlgorithm='ECDH', PublicKey=spki(peer))
    assert r['KeyId'] == meta['Arn'] and r['KeyAgreementAlgorithm'] == 'ECDH', r
    assert r['KeyOrigin'] == 'AWS_KMS', r
    assert r['SharedSecret'] == peer.exchange(ec.ECDH(), kms_public), spec
    assert code(kms.derive_shared_secret, KeyId=key, KeyAgreementAlgorithm='ECDH',
                PublicKey=spki(peer), DryRun=True) == 'DryRunOperationException'
    # A peer on another curve, or no key at all.
    stranger = ec.generate_private_key(ec.SECP256K1())
    assert code(kms.derive_shared_secret, KeyId=key, KeyAgreementAlgorithm='ECDH',
                PublicKey=spki(stranger)) == 'ValidationException'
    assert code(kms.derive_shared_secret, KeyId=key, KeyAgreementAlgorithm='ECDH',
                PublicKey=b'not a key') == 'ValidationException'
    # Key agreement keys neither sign nor encrypt.
    alg = 'ECDSA_SHA_' + {'ECC_NIST_P256': '256', 'ECC_NIST_P384': '384', 'ECC_NIST_P521': '512'}[spec]
    assert code(kms.sign, KeyId=key, Message=b'm', SigningAlgorithm=alg) == 'InvalidKeyUsageException'
# A signing key agrees on nothing.
signer = create('ECC_NIST_P256', 'SIGN_VERIFY')['KeyId']
peer = ec.generate_private_key(ec.SECP256R1())
assert code(kms.derive_shared_secret, KeyId=signer, KeyAgreementAlgorithm='ECDH',
            PublicKey=spki(peer)) == 'InvalidKeyUsageException'
"#,
    );
}

#[test]
fn create_key_refuses_wrong_spec_and_usage_pairs() {
    let s = Server::start();
    s.boto3(
        r#"
for spec, usage in [('HMAC_256', None), ('RSA_2048', None), ('RSA_2048', 'KEY_AGREEMENT'),
                    ('RSA_2048', 'GENERATE_VERIFY_MAC'), ('ECC_NIST_P256', 'ENCRYPT_DECRYPT'),
                    ('ECC_SECG_P256K1', 'KEY_AGREEMENT'), ('HMAC_512', 'SIGN_VERIFY'),
                    ('SYMMETRIC_DEFAULT', 'SIGN_VERIFY')]:
    kw = {'KeySpec': spec}
    if usage:
        kw['KeyUsage'] = usage
    assert code(kms.create_key, **kw) == 'ValidationException', (spec, usage)
for spec in ['SM2', 'ML_DSA_44', 'ML_DSA_65', 'ML_DSA_87', 'ECC_NIST_EDWARDS25519']:
    assert code(kms.create_key, KeySpec=spec, KeyUsage='SIGN_VERIFY') == 'UnsupportedOperationException', spec
# The deprecated name of KeySpec still works.
m = kms.create_key(CustomerMasterKeySpec='ECC_NIST_P256', KeyUsage='SIGN_VERIFY')['KeyMetadata']
assert m['KeySpec'] == 'ECC_NIST_P256', m
# kmsfs imports only symmetric material.
assert code(kms.create_key, KeySpec='RSA_2048', KeyUsage='SIGN_VERIFY',
            Origin='EXTERNAL') == 'UnsupportedOperationException'
# None of the refusals made a key.
assert len(kms.list_keys()['Keys']) == 1
"#,
    );
}

/// `kmsfs kms sign` and `verify` on the embedded store, with the AWS CLI's
/// flags and exit codes.
#[test]
fn cli_signs_and_verifies_with_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("keystore");
    let kmsfs = |args: &[&str]| {
        Command::new(BIN)
            .arg("--keystore")
            .arg(&store)
            .arg("kms")
            .args(args)
            .env_remove("KMSFS_PASSPHRASE_FILE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let json = |args: &[&str]| -> Value {
        let out = kmsfs(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let meta = json(&[
        "create-key",
        "--key-spec",
        "RSA_2048",
        "--key-usage",
        "SIGN_VERIFY",
    ]);
    let key = meta["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
    assert_eq!(meta["KeyMetadata"]["KeySpec"], "RSA_2048");
    let message = dir.path().join("message.txt");
    std::fs::write(&message, b"signed by the kmsfs CLI\n").unwrap();
    let message_arg = format!("fileb://{}", message.display());
    let signed = json(&[
        "sign",
        "--key-id",
        &key,
        "--message",
        &message_arg,
        "--signing-algorithm",
        "RSASSA_PSS_SHA_256",
    ]);
    assert_eq!(signed["SigningAlgorithm"], "RSASSA_PSS_SHA_256");
    let signature = B64.decode(signed["Signature"].as_str().unwrap()).unwrap();
    assert_eq!(signature.len(), 256);
    let sig_path = dir.path().join("sig.bin");
    std::fs::write(&sig_path, &signature).unwrap();
    let sig_arg = format!("fileb://{}", sig_path.display());
    let verify = |sig: &str| {
        kmsfs(&[
            "verify",
            "--key-id",
            &key,
            "--message",
            &message_arg,
            "--signature",
            sig,
            "--signing-algorithm",
            "RSASSA_PSS_SHA_256",
            "--query",
            "SignatureValid",
            "--output",
            "text",
        ])
    };
    let out = verify(&sig_arg);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True");
    // The signature as base64 works the same.
    assert!(
        verify(signed["Signature"].as_str().unwrap())
            .status
            .success()
    );
    // One bit changed: exit 254 and the AWS exception name.
    let mut bad = signature.clone();
    bad[100] ^= 0x01;
    let out = verify(&B64.encode(&bad));
    assert_eq!(out.status.code(), Some(254), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("KMSInvalidSignatureException"),
        "{}",
        stderr(&out)
    );
    // The public key is DER SubjectPublicKeyInfo (a SEQUENCE).
    let pk = json(&["get-public-key", "--key-id", &key]);
    let der = B64.decode(pk["PublicKey"].as_str().unwrap()).unwrap();
    assert_eq!(der[0], 0x30);
    assert_eq!(pk["SigningAlgorithms"].as_array().unwrap().len(), 6);
    // DryRun through the CLI flag.
    let out = kmsfs(&[
        "sign",
        "--key-id",
        &key,
        "--message",
        &message_arg,
        "--signing-algorithm",
        "RSASSA_PSS_SHA_256",
        "--dry-run",
    ]);
    assert_eq!(out.status.code(), Some(254));
    assert!(stderr(&out).contains("DryRunOperationException"));
    // The audit log names the operations.
    let audit = std::fs::read_to_string(dir.path().join("keystore.audit.log")).unwrap();
    assert!(
        audit.contains("\"Sign\"") && audit.contains("\"Verify\""),
        "{audit}"
    );
}
