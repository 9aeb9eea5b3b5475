//! `kmsfs kms serve` for tests: a server over its own new store on a random
//! loopback port (and a Unix socket), IAM users with access keys made by
//! `kmsfs iam`, and the real clients AWS users have (the AWS CLI, boto3),
//! configured the ordinary way.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::BIN;

/// A running `kmsfs kms serve`; killed on drop.
pub(crate) struct KmsServer {
    pub(crate) dir: TempDir,
    pub(crate) store: PathBuf,
    child: Child,
    pub(crate) port: u16,
    pub(crate) socket: PathBuf,
    /// The environment every `kmsfs` command of this server gets.
    env: Vec<(String, String)>,
    /// The server's own flags, for a restart.
    extra: Vec<String>,
}

/// Starts `kmsfs kms serve` and reads the port it bound from its first line.
fn spawn_server(
    store: &std::path::Path,
    socket: &std::path::Path,
    extra: &[String],
    env: &[(String, String)],
) -> (Child, u16) {
    let mut command = Command::new(BIN);
    command
        .arg("--keystore")
        .arg(store)
        .args(["kms", "serve", "--listen", "127.0.0.1:0", "--socket"])
        .arg(socket)
        .args(extra);
    isolate(&mut command, env);
    let mut child = command
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
    // Drain the rest so the server never blocks on stdout.
    std::thread::spawn(move || for _ in lines {});
    (child, port)
}

/// An IAM access key.
pub(crate) struct AccessKey {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl Drop for KmsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl KmsServer {
    /// A server whose store is created in region `local`.
    pub(crate) fn start() -> KmsServer {
        KmsServer::start_with(&[], &[("AWS_REGION", "local")])
    }

    /// A server with `extra` flags for `kmsfs kms serve`, and `env` for it
    /// and every `kmsfs` command run through it (AWS_REGION and
    /// AWS_DEFAULT_REGION are unset unless `env` names them).
    pub(crate) fn start_with(extra: &[&str], env: &[(&str, &str)]) -> KmsServer {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("keystore");
        KmsServer::start_on(dir, store, extra, env)
    }

    /// A server of the store at `store` (a file or a PostgreSQL URL), with
    /// its socket and working files in `dir`.
    pub(crate) fn start_on(
        dir: TempDir,
        store: PathBuf,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> KmsServer {
        let socket = dir.path().join("kms.sock");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_server(&store, &socket, &extra, &env);
        KmsServer {
            dir,
            store,
            child,
            port,
            socket,
            env,
            extra,
        }
    }

    /// Kills the server with SIGKILL (no chance to finish anything).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again, on a new port, after [`KmsServer::kill`].
    pub(crate) fn restart(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let (child, port) = spawn_server(&self.store, &self.socket, &self.extra, &self.env);
        self.child = child;
        self.port = port;
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kmsfs ARGS…` on this server's store, in its environment.
    pub(crate) fn kmsfs(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command.arg("--keystore").arg(&self.store).args(args);
        isolate(&mut command, &self.env);
        command.stdin(Stdio::null()).output().unwrap()
    }

    /// `kmsfs ARGS…`, which must succeed; its JSON output (Null if none).
    pub(crate) fn kmsfs_json(&self, args: &[&str]) -> Value {
        let out = self.kmsfs(args);
        assert!(out.status.success(), "kmsfs {args:?}: {}", stderr(&out));
        if out.stdout.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A new IAM user (for the Unix user of that name) with an access key.
    pub(crate) fn user_with_key(&self, name: &str) -> AccessKey {
        self.kmsfs_json(&["iam", "create-user", "--user-name", name]);
        let k = self.kmsfs_json(&["iam", "create-access-key", "--user-name", name]);
        AccessKey {
            id: k["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
            secret: k["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
        }
    }

    /// The real AWS CLI against this server as `key`, its region from
    /// `env` (e.g. AWS_DEFAULT_REGION, or AWS_CONFIG_FILE naming a config
    /// with a region); no other AWS configuration of the machine applies.
    pub(crate) fn aws_in(&self, key: &AccessKey, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut command = Command::new("aws");
        command
            .arg("--endpoint-url")
            .arg(self.url())
            .args(args)
            .current_dir(self.dir.path())
            .env("AWS_ACCESS_KEY_ID", &key.id)
            .env("AWS_SECRET_ACCESS_KEY", &key.secret)
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1");
        for (k, v) in env {
            command.env(k, v);
        }
        command
            .stdin(Stdio::null())
            .output()
            .expect("the AWS CLI (pip install awscli) must be on PATH")
    }

    /// [`KmsServer::aws_in`] region `local`.
    pub(crate) fn aws(&self, key: &AccessKey, args: &[&str]) -> Output {
        self.aws_in(key, &[("AWS_DEFAULT_REGION", "local")], args)
    }

    pub(crate) fn aws_ok(&self, key: &AccessKey, args: &[&str]) -> String {
        let out = self.aws(key, args);
        assert!(out.status.success(), "aws {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn aws_json(&self, key: &AccessKey, args: &[&str]) -> Value {
        serde_json::from_str(&self.aws_ok(key, args)).unwrap()
    }

    pub(crate) fn aws_err(&self, key: &AccessKey, args: &[&str]) -> String {
        let out = self.aws(key, args);
        assert!(!out.status.success(), "aws {args:?} should fail");
        // AWS CLI v2 exits 254 on a service error, v1 255.
        assert!(
            matches!(out.status.code(), Some(254 | 255)),
            "{:?} {}",
            out.status,
            stderr(&out)
        );
        stderr(&out)
    }

    /// Runs a boto3 script as `key`, which must exit 0; its stdout. The
    /// script has `kms(region)` (a KMS client of this server in that region)
    /// `code(f, *args, **kw)` (the (error code, message) of a call that
    /// must fail), `err(f, *args, **kw)` (its error code alone) and
    /// `eq(a, b)` (an assertion that shows both sides).
    pub(crate) fn boto3(&self, key: &AccessKey, body: &str) -> String {
        let script = format!(
            "import boto3, json, sys\nfrom botocore.exceptions import ClientError\n\
             def kms(region):\n    return boto3.client('kms', endpoint_url='{}', region_name=region, aws_access_key_id='{}', aws_secret_access_key='{}')\n\
             def code(f, *a, **k):\n    try:\n        f(*a, **k)\n    except ClientError as e:\n        return e.response['Error']['Code'], e.response['Error']['Message']\n    raise AssertionError('no error from ' + f.__name__)\n\
             def err(f, *a, **k):\n    return code(f, *a, **k)[0]\n\
             def eq(a, b):\n    assert a == b, f'{{a!r}} != {{b!r}}'\n\
             {body}\n",
            self.url(),
            key.id,
            key.secret
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "boto3: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl KmsServer {
    /// Runs a boto3 script with one KMS client per `(name, key)` (region
    /// `local`), bound to `name`, and the helpers of [`KmsServer::boto3`];
    /// the script must reach its end (it prints OK there).
    pub(crate) fn boto3_as(&self, users: &[(&str, &AccessKey)], body: &str) {
        let mut clients = String::new();
        for (name, k) in users {
            clients.push_str(&format!(
                "{name} = boto3.client('kms', endpoint_url='{}', region_name='local', aws_access_key_id='{}', aws_secret_access_key='{}')\n",
                self.url(),
                k.id,
                k.secret
            ));
        }
        let script = format!("import json\n{clients}\n{body}\nprint('OK')\n");
        let out = self.boto3(users[0].1, &script);
        assert!(out.trim_end().ends_with("OK"), "{out}");
    }
}

/// No configuration of whoever runs the tests reaches `command`: only `env`.
fn isolate(command: &mut Command, env: &[(String, String)]) {
    command
        .env_remove("KMSFS_PASSPHRASE_FILE")
        .env_remove("KMSFS_ACCOUNT_ID")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null");
    for (k, v) in env {
        command.env(k, v);
    }
}
