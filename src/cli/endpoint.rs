//! Volumes whose key service is a KMS endpoint (`kmsfs init --endpoint-url`):
//! creating their config and opening the remote key service, behind the
//! data key cache, when they are mounted.

use std::path::Path;
use std::sync::Arc;

use clap::Args;
use serde_json::json;

use super::CliError;
use kmsfs_format::cipher::CipherSuite;
use kmsfs_kms::cache::{CacheLimits, CachingKms};
use kmsfs_kms::clock::SystemClock;
use kmsfs_kms::remote::{KmsClient, RemoteKms};
use kmsfs_kms::{KeyService, KmsError};
use kmsfs_volume::config::{DEFAULT_KEY_ALIAS, HeaderPlacement, KeyServiceConfig, VolumeConfig};

#[derive(Debug, Clone, Args)]
pub struct EndpointArgs {
    /// Use the KMS at this URL (e.g. `kmsfs kms serve`) instead of the
    /// embedded store; requests are signed with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY from the environment of init and mount.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Use AWS KMS through the AWS SDK (standard credential and region
    /// chains; --endpoint-url then only overrides where requests go). Needs
    /// a kmsfs built with `--features aws-kms`.
    #[arg(long)]
    pub aws_kms: bool,
    /// With --aws-kms: the AWS region [default: the SDK's region chain].
    #[arg(long, requires = "aws_kms")]
    pub aws_region: Option<String>,
    /// With --endpoint-url: most unwrapped data keys the mount caches (0: no cache).
    #[arg(long, default_value_t = CacheLimits::default().max_keys)]
    pub cache_max_keys: usize,
    /// With --endpoint-url: seconds a cached data key may be used (a key
    /// disabled in the KMS stops new opens within this time).
    #[arg(long, default_value_t = CacheLimits::default().max_age_seconds)]
    pub cache_max_age: i64,
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::Failed(what.to_string())
}

/// The key service of a volume whose config names an endpoint.
pub fn volume_kms(config: &KeyServiceConfig) -> Result<Arc<dyn KeyService>, CliError> {
    match config {
        KeyServiceConfig::Endpoint {
            url,
            cache_max_keys,
            cache_max_age_seconds,
        } => {
            let remote: Arc<dyn KeyService> = Arc::new(RemoteKms::new(KmsClient::from_env(url)?));
            Ok(Arc::new(CachingKms::new(
                remote,
                CacheLimits {
                    max_keys: *cache_max_keys,
                    max_age_seconds: *cache_max_age_seconds,
                },
                Arc::new(SystemClock),
            )))
        }
        KeyServiceConfig::Aws {
            region,
            endpoint_url,
            cache_max_keys,
            cache_max_age_seconds,
        } => Ok(Arc::new(CachingKms::new(
            aws_kms(region.as_deref(), endpoint_url.as_deref())?,
            CacheLimits {
                max_keys: *cache_max_keys,
                max_age_seconds: *cache_max_age_seconds,
            },
            Arc::new(SystemClock),
        ))),
        KeyServiceConfig::Embedded { .. } => Err(failed(
            "internal error: the embedded store is not an endpoint",
        )),
    }
}

#[cfg(feature = "aws-kms")]
fn aws_kms(
    region: Option<&str>,
    endpoint_url: Option<&str>,
) -> Result<Arc<dyn KeyService>, CliError> {
    Ok(Arc::new(kmsfs_kms::aws::AwsKms::new(region, endpoint_url)?))
}

#[cfg(not(feature = "aws-kms"))]
fn aws_kms(
    _region: Option<&str>,
    _endpoint_url: Option<&str>,
) -> Result<Arc<dyn KeyService>, CliError> {
    Err(failed(
        "this volume's keys are in AWS KMS, but this kmsfs was built without AWS KMS support: rebuild with `cargo build --features aws-kms`",
    ))
}

/// The ARN of the volume's CMK at the endpoint, creating the default key
/// (and its alias) there if none is named and it does not exist yet.
fn resolve_key(client: &KmsClient, key_id: Option<&str>) -> Result<String, KmsError> {
    let arn_of = |v: serde_json::Value| {
        v["KeyMetadata"]["Arn"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| KmsError::Internal("the endpoint answered no key ARN".into()))
    };
    if let Some(k) = key_id {
        return arn_of(client.call("DescribeKey", &json!({"KeyId": k}))?);
    }
    match client.call("DescribeKey", &json!({"KeyId": DEFAULT_KEY_ALIAS})) {
        Ok(v) => arn_of(v),
        Err(KmsError::NotFound(_)) => {
            let created = client.call(
                "CreateKey",
                &json!({"Description": "kmsfs default volume key"}),
            )?;
            let arn = arn_of(created.clone())?;
            let id = created["KeyMetadata"]["KeyId"].as_str().unwrap_or(&arn);
            client.call(
                "CreateAlias",
                &json!({"AliasName": DEFAULT_KEY_ALIAS, "TargetKeyId": id}),
            )?;
            eprintln!("kmsfs: created CMK {arn} ({DEFAULT_KEY_ALIAS}) at the endpoint");
            Ok(arn)
        }
        Err(e) => Err(e),
    }
}

/// `kmsfs init --endpoint-url URL BACKING`.
pub fn init_volume(
    backing: &Path,
    endpoint: &EndpointArgs,
    key_id: Option<&str>,
    cipher: CipherSuite,
    header: HeaderPlacement,
) -> Result<VolumeConfig, CliError> {
    if endpoint.cache_max_age < 0 {
        return Err(CliError::Usage(
            "--cache-max-age must not be negative".into(),
        ));
    }
    super::volume::prepare_empty_backing(backing)?;
    let (service, arn) = if endpoint.aws_kms {
        let service = KeyServiceConfig::Aws {
            region: endpoint.aws_region.clone(),
            endpoint_url: endpoint.endpoint_url.clone(),
            cache_max_keys: endpoint.cache_max_keys,
            cache_max_age_seconds: endpoint.cache_max_age,
        };
        let kms = volume_kms(&service)?;
        let key = key_id.unwrap_or(DEFAULT_KEY_ALIAS);
        let arn = kms
            .describe_key(&kmsfs_kms::Caller::current(), key)
            .map_err(|e| match e {
                KmsError::NotFound(m) if key_id.is_none() => KmsError::NotFound(format!(
                    "{m} (kmsfs does not create CMKs in AWS KMS: name one with --key-id)"
                )),
                other => other,
            })?
            .key_arn;
        (service, arn)
    } else {
        let url = endpoint
            .endpoint_url
            .as_deref()
            .ok_or_else(|| failed("--endpoint-url is required"))?;
        let client = KmsClient::from_env(url)?;
        let arn = resolve_key(&client, key_id)?;
        let service = KeyServiceConfig::Endpoint {
            url: client.url().to_string(),
            cache_max_keys: endpoint.cache_max_keys,
            cache_max_age_seconds: endpoint.cache_max_age,
        };
        (service, arn)
    };
    let config = VolumeConfig::new(cipher, header, service, arn);
    config.save(backing).map_err(failed)?;
    Ok(config)
}
