//! `kmsfs kms serve`: the embedded key store as an AWS KMS endpoint.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, open_local_kms};
use kmsfs_kms_server::{self as server, ServeOptions};

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// TCP address to serve on (requests must be SigV4-signed with an access
    /// key from `kmsfs iam create-access-key`); port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Unix socket to serve on (the caller is the peer's uid; no signature).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_body: usize,
    /// Seconds a client has to send a request's headers, then its body.
    #[arg(long, default_value_t = 10)]
    pub read_timeout: u64,
    /// Most connections kept at once. Every connection is accepted; beyond
    /// this a newcomer closes an idle one, preferring connections that have
    /// not yet carried a signed request.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Most connections one peer (IP address, or uid on the socket) may hold
    /// before any of them carried a signed request; beyond it the peer's own
    /// oldest idle one is closed.
    #[arg(long, default_value_t = 128)]
    pub max_connections_per_peer: usize,
    /// Seconds a keep-alive connection may sit idle between requests once it
    /// carried a signed request (before that, --read-timeout).
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// TLS certificate chain (PEM, leaf first) for the TCP listener: serves
    /// https. Clients trust it through AWS_CA_BUNDLE (or the AWS CLI's
    /// --ca-bundle, boto3's verify=).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM, PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Requests per second each principal (IAM user, or uid on the socket)
    /// may make, in bursts of as many; beyond it ThrottlingException, which
    /// AWS SDKs retry with backoff. 0: no limit.
    #[arg(long, default_value_t = server::DEFAULT_REQUESTS_PER_SECOND)]
    pub requests_per_second: u32,
    /// Most KMS keys one region of the store may hold (AWS's default
    /// quota); CreateKey and ReplicateKey beyond it: LimitExceededException.
    #[arg(long, default_value_t = kmsfs_kms::local::DEFAULT_KEY_QUOTA)]
    pub key_quota: usize,
}

pub(crate) fn serve(args: &ServeArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    let listen = match (args.listen, &args.socket) {
        (None, None) => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        (l, _) => l,
    };
    let kms = Arc::new(
        open_local_kms(keystore, Arc::new(kmsfs_kms::clock::SystemClock))?
            .with_key_quota(args.key_quota),
    );
    let opts = ServeOptions {
        listen,
        socket: args.socket.clone(),
        max_body: args.max_body,
        read_timeout: std::time::Duration::from_secs(args.read_timeout.max(1)),
        max_connections: args.max_connections.max(1),
        max_connections_per_peer: args.max_connections_per_peer.max(1),
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout.max(1)),
        tls: args
            .tls_cert
            .clone()
            .zip(args.tls_key.clone())
            .map(|(cert, key)| server::TlsFiles { cert, key }),
        requests_per_second: args.requests_per_second,
        ..ServeOptions::default()
    };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    server::serve(kms, opts, |tcp, unix| {
        // Scripts (and the tests) read the bound address from this line.
        let mut out = std::io::stdout().lock();
        if let Some(addr) = tcp {
            let _ = writeln!(out, "listening on {scheme}://{addr}");
        }
        if let Some(path) = unix {
            let _ = writeln!(out, "listening on unix:{}", path.display());
        }
        let _ = out.flush();
        kmsfs_mount::daemon::sd_notify("READY=1");
    })
    .map_err(|e| CliError::Failed(format!("kmsfs kms serve: {e}")))
}
